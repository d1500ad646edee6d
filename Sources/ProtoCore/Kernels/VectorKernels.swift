// Which element-wise kernels run: the AVX-512 C ones (CKernels/elementwise.c) or the Swift loops.
import CKernels

/// The element-wise kernels of the step (ReLU², AdamW, RoPE, RMSNorm's per-element parts) in
/// AVX-512 C: the same bits as the Swift loops beside each call, which Swift compiles to scalar
/// code (the loops' pointers may alias, so LLVM does not vectorise them).
public enum VectorKernels {
    /// True when this CPU runs them.
    public static let cpuHasAVX512 = pm_have_avx512() != 0
    /// Use them where the CPU has them (default). False forces the Swift loops (tests compare the two).
    nonisolated(unsafe) public static var enabled = cpuHasAVX512
    static var use: Bool { enabled && cpuHasAVX512 }
}

// MLP activation: ReLU² (as in modded-nanogpt): cheap, sparse, and trains well at small scale.
import CKernels

/// The element-wise kernels of the step (ReLU², AdamW, RoPE, RMSNorm's per-element parts) in
/// AVX-512 C (CKernels/elementwise.c):
/// the same bits as the Swift loops, which Swift itself compiles to scalar code.
public enum VectorKernels {
    /// True when this CPU runs them.
    public static let cpuHasAVX512 = pm_have_avx512() != 0
    /// Use them where the CPU has them (default). False forces the Swift loops (tests compare the two).
    nonisolated(unsafe) public static var enabled = cpuHasAVX512
    static var use: Bool { enabled && cpuHasAVX512 }
}

/// out = max(inp, 0)², n elements.
public func reluSquaredForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ n: Int) {
    let vector = VectorKernels.use
    Parallel.chunks(n, minPerChunk: 1 << 15) { lo, hi in
        if vector { pm_relu2_forward(out + lo, inp + lo, hi - lo); return }
        for i in lo..<hi { let r = max(inp[i], 0); out[i] = r * r }
    }
}

/// dinp = dout · 2·max(inp, 0). `dinp` may alias `dout`.
public func reluSquaredBackward(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                                _ inp: UnsafePointer<Float>, _ n: Int) {
    let vector = VectorKernels.use
    Parallel.chunks(n, minPerChunk: 1 << 15) { lo, hi in
        if vector { pm_relu2_backward(dinp + lo, dout + lo, inp + lo, hi - lo); return }
        for i in lo..<hi { dinp[i] = dout[i] * 2 * max(inp[i], 0) }
    }
}

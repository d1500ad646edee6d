// Row-major sgemm wrapper: every matrix product in protomodel goes through here.
import CBLAS
import CKernels
import Dispatch

/// How a matrix product multiplies: `fp32` is OpenBLAS sgemm; `bf16` rounds both operands to
/// bfloat16 and multiplies with fp32 sums and an fp32 result, the mixed precision of PyTorch's CPU
/// autocast for matmuls, on Intel AMX (pm_gemm_amx_bf16) or AVX512-BF16 dot products
/// (pm_gemm_avx512_bf16), whichever `bf16Kernel` names.
public enum MatmulPrecision: String, CaseIterable, Sendable {
    case fp32, bf16

    /// The unit that runs the bf16 products. `amx`: Intel AMX tiles (Sapphire Rapids and newer),
    /// linear layers and attention. `avx512bf16`: AVX512-BF16 dot products (AMD Zen 4 and newer,
    /// Intel Cooper Lake), linear layers; attention stays fp32.
    public enum BF16Kernel: String, CaseIterable, Sendable {
        case amx
        case avx512bf16 = "avx512-bf16"

        /// True when this CPU and OS run it (for AMX: the tile state granted by Linux).
        public var isAvailable: Bool {
            switch self {
            case .amx: return pm_have_amx_bf16() != 0
            case .avx512bf16: return pm_have_avx512_bf16() != 0
            }
        }

        /// As logged: "AMX" or "AVX512-BF16".
        public var label: String { self == .amx ? "AMX" : "AVX512-BF16" }
    }

    /// The model's matrix products, process-wide: every linear layer's three (forward, input
    /// gradient, weight gradient) and attention's (AttentionKernel.usesAMX). Set once before
    /// training starts (`--matmul`). Under .bf16 only the products' inputs are rounded: weights,
    /// activations, gradients, softmax, norms, the optimizer and the subspace projections at stage
    /// boundaries stay fp32.
    nonisolated(unsafe) public static var current: MatmulPrecision = .fp32

    /// The kernel that runs bf16 products: the best this machine has (AMX, then AVX512-BF16), or
    /// nil when it has neither. Set to another available one to compare them (`--bf16-kernel`).
    nonisolated(unsafe) public static var bf16Kernel: BF16Kernel? = BF16Kernel.allCases.first { $0.isAvailable }

    /// True when this machine runs bf16 products at all.
    public static var bf16Available: Bool { bf16Kernel != nil }

    /// As logged: "fp32", "bf16 on AMX" or "bf16 on AVX512-BF16".
    public var label: String {
        self == .fp32 ? "fp32" : "bf16 on \(MatmulPrecision.bf16Kernel?.label ?? "(no bf16 kernel)")"
    }
}

public enum BLAS {
    /// C[M×N] = alpha · op(A) · op(B) + beta · C, all row-major with leading dimensions.
    /// op(A) is M×K (A is K×M when `transA`), op(B) is K×N (B is N×K when `transB`).
    /// With `precision` .bf16 the product runs on `MatmulPrecision.bf16Kernel` (the caller checks
    /// `MatmulPrecision.bf16Available`; a CPU without a bf16 kernel stops the process with a message).
    @inline(__always)
    public static func gemm(
        transA: Bool = false, transB: Bool = false, M: Int, N: Int, K: Int,
        alpha: Float = 1, A: UnsafePointer<Float>, lda: Int,
        B: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, C: UnsafeMutablePointer<Float>, ldc: Int,
        precision: MatmulPrecision = .fp32
    ) {
        if M == 0 || N == 0 { return }
        if precision == .bf16 {
            let kernel = MatmulPrecision.bf16Kernel
            precondition(kernel != nil, "bf16 matrix products need AMX-BF16 or AVX512-BF16 (checked when the run starts)")
            let rc = (kernel == .amx ? pm_gemm_amx_bf16 : pm_gemm_avx512_bf16)(
                transA ? 1 : 0, transB ? 1 : 0, Int32(M), Int32(N), Int32(K), alpha, A, Int32(lda), B, Int32(ldb), beta, C, Int32(ldc))
            precondition(rc == 0, "out of memory for the bf16 product's packed operands (M=\(M) N=\(N) K=\(K))")
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(M), Int32(N), Int32(K), alpha, A, Int32(lda), B, Int32(ldb), beta, C, Int32(ldc))
    }

    /// The same product split over `Parallel.threads` workers, each a single-threaded sgemm
    /// on a block of rows (or columns) of C. OpenBLAS's own thread pool stays at one thread:
    /// its spinning workers fight with ours for the cores otherwise.
    public static func gemmParallel(
        transA: Bool = false, transB: Bool = false, M: Int, N: Int, K: Int,
        alpha: Float = 1, A: UnsafePointer<Float>, lda: Int,
        B: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, C: UnsafeMutablePointer<Float>, ldc: Int,
        precision: MatmulPrecision = .fp32
    ) {
        let t = Parallel.threads
        if t <= 1 || 2 * Double(M) * Double(N) * Double(K) < 4e6 {
            gemm(transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda,
                 B: B, ldb: ldb, beta: beta, C: C, ldc: ldc, precision: precision)
            return
        }
        let splitRows = M >= N
        let extent = splitRows ? M : N
        let parts = min(t, max(1, extent / 16))
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            // Block boundaries on multiples of 16 keep the kernels' vector tiles whole.
            let lo = (extent * p / parts) & ~15, hi = p == parts - 1 ? extent : (extent * (p + 1) / parts) & ~15
            if lo >= hi { return }
            if splitRows {
                gemm(transA: transA, transB: transB, M: hi - lo, N: N, K: K, alpha: alpha,
                     A: transA ? A + lo : A + lo * lda, lda: lda, B: B, ldb: ldb,
                     beta: beta, C: C + lo * ldc, ldc: ldc, precision: precision)
            } else {
                gemm(transA: transA, transB: transB, M: M, N: hi - lo, K: K, alpha: alpha, A: A, lda: lda,
                     B: transB ? B + lo * ldb : B + lo, ldb: ldb, beta: beta, C: C + lo, ldc: ldc,
                     precision: precision)
            }
        }
    }

    /// Sets the number of threads OpenBLAS uses for each call (process-wide).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The OpenBLAS build string, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64".
    public static var configString: String {
        guard let c = openblas_get_config() else { return "OpenBLAS (unknown)" }
        let core = openblas_get_corename().map { String(cString: $0) } ?? "?"
        return String(cString: c) + " core=" + core
    }
}

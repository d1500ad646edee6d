// Splits row loops across a small number of threads (elementwise kernels, attention heads).
import Dispatch

public enum Parallel {
    /// Worker threads used by the kernels' own loops (BLAS has its own setting).
    nonisolated(unsafe) public static var threads = 1

    /// Runs `body(lo, hi)` over contiguous chunks of 0..<n, in parallel when threads > 1
    /// and the work is large enough to pay for it.
    @inline(__always)
    public static func chunks(_ n: Int, minPerChunk: Int = 64, _ body: (Int, Int) -> Void) {
        let t = min(threads, max(1, n / max(1, minPerChunk)))
        if t <= 1 { body(0, n); return }
        DispatchQueue.concurrentPerform(iterations: t) { c in
            let lo = n * c / t, hi = n * (c + 1) / t
            if lo < hi { body(lo, hi) }
        }
    }
}

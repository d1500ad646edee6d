// Wall and per-thread CPU clocks (the virtual clock advances by CPU time actually used).
import Foundation

public enum Clock {
    /// Monotonic wall time in seconds.
    @inline(__always) public static func wall() -> Double {
        var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
    /// CPU time consumed by the calling thread, in seconds.
    @inline(__always) public static func threadCPU() -> Double {
        var ts = timespec(); clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

// Steady-state step time: ignore warm-up, as the Protocol NanoGPT harness does.

public struct SteadyState: Sendable, Equatable {
    /// Mean step time from `fromStep` to the end of the run.
    public var seconds: Double
    /// First step of the first of the three agreeing windows.
    public var fromStep: Int
    /// False when no three windows agreed: `seconds` is then the mean of the last half.
    public var reached: Bool

    /// The first three consecutive `window`-step windows whose mean step times lie within
    /// `tolerance` of each other (max/min − 1) mark the steady state; its step time is the
    /// mean of every step from the first of them to the end.
    public static func detect(_ times: [Double], window: Int = 10, tolerance: Double = 0.01) -> SteadyState {
        precondition(window >= 1)
        let n = times.count
        func mean(_ lo: Int, _ hi: Int) -> Double { times[lo..<hi].reduce(0, +) / Double(max(1, hi - lo)) }
        var start = 0
        while start + 3 * window <= n {
            let m = (0..<3).map { mean(start + $0 * window, start + ($0 + 1) * window) }
            if let lo = m.min(), let hi = m.max(), lo > 0, hi / lo - 1 <= tolerance {
                return SteadyState(seconds: mean(start, n), fromStep: start, reached: true)
            }
            start += window
        }
        let half = n / 2
        return SteadyState(seconds: n > 0 ? mean(half, n) : 0, fromStep: half, reached: false)
    }
}

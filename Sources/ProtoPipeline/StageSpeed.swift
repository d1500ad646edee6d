// Emulated stage speed (SPEC §5): CPU stages compute about a thousand times slower than the
// GPUs the method is for, which moves every figure into a compute-bound regime. On the
// virtual clock an action may instead be charged its CPU time × (this core's measured rate /
// a target stage rate): "these stages, as fast as a given GPU, on this link". It assumes the
// target reaches the same share of its peak as the CPU does of its own.

public enum StageSpeed: Equatable, Sendable, CustomStringConvertible {
    /// Compute is charged as measured on this CPU.
    case native
    /// Stages that compute at `flops` FLOP/s (e.g. 30e12 for a consumer GPU's effective rate).
    case target(flops: Double)
    /// Stages `factor` times faster than this CPU core.
    case speedup(Double)

    /// Parses "native" (or "off"), "30tflops" / "500gflops", or "x1000".
    public static func parse(_ text: String) throws -> StageSpeed {
        let s = text.lowercased().trimmingCharacters(in: .whitespaces)
        if s == "native" || s == "off" || s == "cpu" { return .native }
        if s.hasPrefix("x"), let f = Double(s.dropFirst()), f > 0, f.isFinite { return .speedup(f) }
        for (unit, mult) in [("tflops", 1e12), ("gflops", 1e9), ("pflops", 1e15)] where s.hasSuffix(unit) {
            if let v = Double(s.dropLast(unit.count)), v > 0, v.isFinite { return .target(flops: v * mult) }
        }
        throw LinkError("--stage-speed '\(text)': expected native, a rate such as 30tflops or 500gflops, or a speed-up such as x1000")
    }

    /// What one CPU second of compute is charged, given this core's rate in FLOP/s.
    public func scale(coreFlops: Double) -> Double {
        switch self {
        case .native: return 1
        case .target(let f): return coreFlops / f
        case .speedup(let x): return 1 / x
        }
    }

    public var description: String {
        switch self {
        case .native: return "native (CPU)"
        case .target(let f): return f >= 1e12 ? "\(trim(f / 1e12)) TFLOP/s" : "\(trim(f / 1e9)) GFLOP/s"
        case .speedup(let x): return "×\(trim(x)) the CPU core"
        }
    }
    private func trim(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(format: "%.3g", v) }
}

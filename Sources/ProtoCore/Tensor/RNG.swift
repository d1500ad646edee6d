// Deterministic random numbers: every rank can rebuild the same tensors from a seed.
import Foundation

/// SplitMix64 generator with a Box–Muller normal sampler. Its whole state is one UInt64,
/// so it is trivially saved in checkpoints and identical on every platform.
public struct SplitMix64: Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform integer in 0..<n.
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0)
        return Int(next() % UInt64(n))
    }

    /// Fills `out[0..<n]` with N(0, std²) samples.
    public mutating func fillNormal(_ out: UnsafeMutablePointer<Float>, _ n: Int, std: Float) {
        var i = 0
        while i < n {
            let u1 = max(uniform(), 1e-300), u2 = uniform()
            let r = (-2 * log(u1)).squareRoot()
            out[i] = Float(r * cos(2 * .pi * u2)) * std
            if i + 1 < n { out[i + 1] = Float(r * sin(2 * .pi * u2)) * std }
            i += 2
        }
    }

    /// A seed derived from a base seed and a label, so independent streams do not overlap.
    public static func derive(_ seed: UInt64, _ label: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed  // FNV-1a over the label
        for b in label.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        var g = SplitMix64(seed: h)
        return g.next()
    }
}

// Where a step's time goes, kernel by kernel (`protomodel bench-engine --profile`): wall time
// of each kernel call, forward and backward apart. Off unless a model is given a profile.
import Dispatch

public final class KernelProfile: @unchecked Sendable {
    public enum Kernel: String, CaseIterable, Sendable {
        case embedding, norm, qkv, rope, attention, attnProj = "attn_proj", fc, relu2, fcProj = "fc_proj"
        case residual, head = "lm_head", crossEntropy = "cross_entropy", optimizer
    }
    /// Seconds and calls per (kernel, backward?).
    public private(set) var seconds: [String: Double] = [:]
    public private(set) var calls: [String: Int] = [:]
    public init() {}

    static func key(_ k: Kernel, _ backward: Bool) -> String { k.rawValue + (backward ? " bwd" : " fwd") }

    @inline(__always)
    public func time<T>(_ k: Kernel, backward: Bool, _ body: () -> T) -> T {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = body()
        let key = Self.key(k, backward)
        seconds[key, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        calls[key, default: 0] += 1
        return r
    }

    public func reset() { seconds = [:]; calls = [:] }

    /// (kernel, forward seconds, backward seconds), largest total first.
    public var rows: [(kernel: Kernel, forward: Double, backward: Double)] {
        Kernel.allCases.map { k in (k, seconds[Self.key(k, false)] ?? 0, seconds[Self.key(k, true)] ?? 0) }
            .filter { $0.forward + $0.backward > 0 }
            .sorted { $0.forward + $0.backward > $1.forward + $1.backward }
    }
}

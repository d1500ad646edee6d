// Pipeline schedules as data: for every stage, the ordered list of actions one training
// step performs. One interpreter (PipelineStage) runs them; the simulator below checks them
// without any communication.

/// One thing a stage does. Micro-batch indices are 0-based.
public enum Action: Equatable, Hashable, Sendable, CustomStringConvertible {
    case recvForward(Int)    // activation of micro-batch m from stage − 1; pairs with sendForward there
    case forward(Int)
    case sendForward(Int)    // to stage + 1; pairs with recvForward there
    case recvBackward(Int)   // gradient of our output from stage + 1; pairs with sendBackward there
    case backward(Int)
    case sendBackward(Int)   // gradient of our input to stage − 1; pairs with recvBackward there
    case sendTargets(Int)    // first stage (rank 0, which loads data) → last stage
    case recvTargets(Int)    // last stage, from the first
    case optimizerStep       // global-norm all-reduce, then the local AdamW update

    public var description: String {
        switch self {
        case let .recvForward(m): return "rF\(m)"
        case let .forward(m): return "F\(m)"
        case let .sendForward(m): return "sF\(m)"
        case let .recvBackward(m): return "rB\(m)"
        case let .backward(m): return "B\(m)"
        case let .sendBackward(m): return "sB\(m)"
        case let .sendTargets(m): return "sT\(m)"
        case let .recvTargets(m): return "rT\(m)"
        case .optimizerStep: return "OPT"
        }
    }

    var isCompute: Bool {
        switch self { case .forward, .backward, .optimizerStep: return true; default: return false }
    }
}

public enum ScheduleKind: String, CaseIterable, Codable, Sendable {
    case gpipe
    case oneFOneB = "1f1b"
}

/// The action lists of every stage for S stages and M micro-batches.
public struct PipelineSchedule: Sendable {
    public let kind: ScheduleKind
    public let stages: Int
    public let microbatches: Int

    public init(kind: ScheduleKind, stages: Int, microbatches: Int) {
        precondition(stages >= 1 && microbatches >= 1)
        self.kind = kind; self.stages = stages; self.microbatches = microbatches
    }

    /// The training step of stage `s`.
    public func actions(stage s: Int) -> [Action] {
        let first = s == 0, last = s == stages - 1, M = microbatches
        func fwd(_ m: Int) -> [Action] {
            var a: [Action] = []
            if first && !last { a.append(.sendTargets(m)) }
            if last && !first { a.append(.recvTargets(m)) }
            if !first { a.append(.recvForward(m)) }
            a.append(.forward(m))
            if !last { a.append(.sendForward(m)) }
            return a
        }
        func bwd(_ m: Int) -> [Action] {
            var a: [Action] = []
            if !last { a.append(.recvBackward(m)) }
            a.append(.backward(m))
            if !first { a.append(.sendBackward(m)) }
            return a
        }
        var out: [Action] = []
        switch kind {
        case .gpipe:
            for m in 0..<M { out += fwd(m) }
            for m in 0..<M { out += bwd(m) }
        case .oneFOneB:
            // Warm-up: enough forwards to fill the pipeline below us.
            let warmup = min(stages - s - 1, M)
            for m in 0..<warmup { out += fwd(m) }
            // Steady state: one forward, one backward.
            for i in 0..<(M - warmup) { out += fwd(warmup + i); out += bwd(i) }
            // Cool-down: the backwards still owed.
            for m in (M - warmup)..<M { out += bwd(m) }
        }
        out.append(.optimizerStep)
        return out
    }

    /// A forward-only pass (validation) of stage `s`.
    public func evalActions(stage s: Int) -> [Action] {
        actions(stage: s).filter {
            switch $0 { case .backward, .sendBackward, .recvBackward, .optimizerStep: return false; default: return true }
        }
    }

    /// Most micro-batches a stage holds activations for at once (forwarded, not yet backwarded).
    public func maxInFlight(stage s: Int) -> Int {
        var live = 0, peak = 0
        for a in actions(stage: s) {
            if case .forward = a { live += 1; peak = max(peak, live) }
            if case .backward = a { live -= 1 }
        }
        return peak
    }
}

// Dry run of a schedule on all stages at once, with no communication: sends are buffered,
// receives wait for their send, forwards take one tick and backwards two. It proves the
// schedule's invariants and yields the grid `protomodel schedule` prints.

public struct SimulationReport: Sendable {
    /// timeline[s][t]: what stage s computes at tick t ("" when idle).
    public var timeline: [[String]]
    public var makespan: Int
    /// Idle ticks / makespan, per stage and overall (the pipeline bubble with these costs).
    public var bubbleShare: Double
    public var maxInFlight: [Int]
    /// Violations found; empty when the schedule is sound.
    public var problems: [String]
}

public enum ScheduleSimulator {
    public static func run(_ sched: PipelineSchedule, forwardCost: Int = 1, backwardCost: Int = 2,
                           actions custom: [[Action]]? = nil) -> SimulationReport {
        let S = sched.stages
        let lists = custom ?? (0..<S).map { sched.actions(stage: $0) }
        var problems: [String] = []

        // Static checks: order on each stage, and every send has exactly one receive.
        enum Kind: Hashable { case fwd, bwd, tgt }
        struct Msg: Hashable { var from: Int, to: Int, kind: Kind, mb: Int }
        var sends: [Msg: Int] = [:], recvs: [Msg: Int] = [:]
        for (s, list) in lists.enumerated() {
            var forwarded = Set<Int>(), live = 0, peak = 0
            for a in list {
                switch a {
                case let .forward(m): forwarded.insert(m); live += 1; peak = max(peak, live)
                case let .backward(m):
                    if !forwarded.contains(m) { problems.append("stage \(s): B\(m) before F\(m)") }
                    live -= 1
                case let .sendForward(m): sends[Msg(from: s, to: s + 1, kind: .fwd, mb: m), default: 0] += 1
                case let .recvForward(m): recvs[Msg(from: s - 1, to: s, kind: .fwd, mb: m), default: 0] += 1
                case let .sendBackward(m): sends[Msg(from: s, to: s - 1, kind: .bwd, mb: m), default: 0] += 1
                case let .recvBackward(m): recvs[Msg(from: s + 1, to: s, kind: .bwd, mb: m), default: 0] += 1
                case let .sendTargets(m): sends[Msg(from: s, to: S - 1, kind: .tgt, mb: m), default: 0] += 1
                case let .recvTargets(m): recvs[Msg(from: 0, to: s, kind: .tgt, mb: m), default: 0] += 1
                case .optimizerStep: break
                }
            }
            let bound = sched.kind == .gpipe ? sched.microbatches : min(sched.microbatches, S - s)
            if peak > bound { problems.append("stage \(s): \(peak) micro-batches in flight, bound is \(bound)") }
            if live != 0 { problems.append("stage \(s): \(live) forwards without a backward") }
        }
        for (m, n) in sends where recvs[m] != n { problems.append("send \(m) sent \(n)×, received \(recvs[m] ?? 0)×") }
        for (m, n) in recvs where sends[m] != n { problems.append("receive \(m) has \(sends[m] ?? 0) matching sends for \(n) receives") }

        // Dynamic run: ticks until every stage is done, or nobody can move (deadlock).
        var pc = [Int](repeating: 0, count: S), busyUntil = [Int](repeating: 0, count: S)
        var mailbox: [Msg: Int] = [:]
        var timeline = [[String]](repeating: [], count: S)
        var t = 0
        func done(_ s: Int) -> Bool { pc[s] >= lists[s].count && busyUntil[s] <= t }
        while !(0..<S).allSatisfy(done) {
            var progressed = true, computing = false
            while progressed {  // fix-point: a send this tick may unblock another stage's receive
                progressed = false
                for s in 0..<S where busyUntil[s] <= t && pc[s] < lists[s].count {
                    let a = lists[s][pc[s]]
                    var msg: Msg?
                    var isRecv = false
                    switch a {
                    case let .sendForward(m): mailbox[Msg(from: s, to: s + 1, kind: .fwd, mb: m), default: 0] += 1
                    case let .sendBackward(m): mailbox[Msg(from: s, to: s - 1, kind: .bwd, mb: m), default: 0] += 1
                    case let .sendTargets(m): mailbox[Msg(from: s, to: S - 1, kind: .tgt, mb: m), default: 0] += 1
                    case let .recvForward(m): msg = Msg(from: s - 1, to: s, kind: .fwd, mb: m); isRecv = true
                    case let .recvBackward(m): msg = Msg(from: s + 1, to: s, kind: .bwd, mb: m); isRecv = true
                    case let .recvTargets(m): msg = Msg(from: 0, to: s, kind: .tgt, mb: m); isRecv = true
                    case .forward, .backward, .optimizerStep:
                        let cost: Int
                        if case .backward = a { cost = backwardCost } else if case .forward = a { cost = forwardCost } else { cost = 1 }
                        busyUntil[s] = t + cost
                        while timeline[s].count < t { timeline[s].append("") }
                        for _ in 0..<cost { timeline[s].append(a.description) }
                        pc[s] += 1; progressed = true; computing = true
                        continue
                    }
                    if isRecv {
                        guard let k = msg, let n = mailbox[k], n > 0 else { continue }
                        mailbox[k] = n - 1
                    }
                    pc[s] += 1; progressed = true
                }
            }
            let anyBusy = (0..<S).contains { busyUntil[$0] > t }
            if !anyBusy && !computing && !(0..<S).allSatisfy(done) {
                let blocked = (0..<S).filter { pc[$0] < lists[$0].count }.map { "stage \($0) at \(lists[$0][pc[$0]])" }
                problems.append("deadlock at tick \(t): " + blocked.joined(separator: ", "))
                break
            }
            t += 1
        }
        let makespan = timeline.map(\.count).max() ?? 0
        for s in 0..<S { while timeline[s].count < makespan { timeline[s].append("") } }
        let idle = timeline.reduce(0) { $0 + $1.filter(\.isEmpty).count }
        let inFlight = (0..<S).map { s in
            var live = 0, peak = 0
            for a in lists[s] { if case .forward = a { live += 1; peak = max(peak, live) }; if case .backward = a { live -= 1 } }
            return peak
        }
        return SimulationReport(timeline: timeline, makespan: makespan,
                                bubbleShare: makespan == 0 ? 0 : Double(idle) / Double(makespan * S),
                                maxInFlight: inFlight, problems: problems)
    }

    /// The timeline as a text grid, one row per stage.
    public static func grid(_ r: SimulationReport) -> String {
        let w = max(3, (r.timeline.flatMap { $0 }.map(\.count).max() ?? 2) + 1)
        var out = ""
        for (s, row) in r.timeline.enumerated() {
            out += "stage \(s) |"
            var prev = ""
            for cell in row {
                let text = cell.isEmpty ? "." : (cell == prev ? "" : cell)
                out += String(repeating: " ", count: max(0, w - text.count)) + text
                prev = cell
            }
            out += "\n"
        }
        return out
    }
}

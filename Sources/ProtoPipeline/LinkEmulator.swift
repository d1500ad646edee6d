// The link emulator of SPEC §5: every boundary message is charged to an emulated link
// (bandwidth, one-way latency), receiver side, one inbound link per rank shared by the
// forward and backward traffic it receives:
//
//     arrives_at   = max(link_free_at, sent_at) + 8·bytes / bandwidth + latency
//     link_free_at = arrives_at
//
// Two clocks: `sleep` (the receiver sleeps on the wall clock until arrives_at; right when
// every rank has its own processor) and `virtual` (a per-rank clock advanced by each
// action's thread CPU time and by the link model; right when ranks share cores). A
// virtual run can follow several links at once: every rank keeps one clock per link and
// every message carries the sender's clock for each.
import Foundation

/// How latency and transfer share a link.
public enum LinkKind: String, CaseIterable, Codable, Sendable {
    /// The reference speedrun harness: a message holds the inbound link until it arrives
    /// (transfer + latency), so every message costs at least the latency. The default.
    case speedrun
    /// TCP-like: transfers go back to back on the wire; each message arrives `latency` after
    /// its last byte left, and latency overlaps with the next transfer.
    case streaming
}

/// An emulated network link.
public struct LinkModel: Equatable, Sendable, CustomStringConvertible {
    /// The name it was given by ("off", "80mbit", "200mbit:50ms", a preset name).
    public var name: String
    /// Bandwidth in bit/s; nil means unlimited.
    public var bitsPerSecond: Double?
    /// One-way latency in seconds.
    public var latency: Double
    public var kind: LinkKind = .speedrun {
        didSet { boundaries = boundaries?.map { var b = $0; b.kind = kind; return b } }
    }
    /// One link per pipeline boundary ("200mbit:50ms/20mbit:50ms/…"), each with its own queue
    /// at the receiver; nil: this link on every boundary, one inbound queue per receiving rank
    /// shared by its forward and backward traffic. With boundaries, bitsPerSecond/latency
    /// above describe the slowest one (for tables).
    public var boundaries: [LinkModel]?

    public init(name: String, bitsPerSecond: Double?, latency: Double, kind: LinkKind = .speedrun) {
        self.name = name; self.bitsPerSecond = bitsPerSecond; self.latency = latency; self.kind = kind
    }

    /// The link messages crossing `boundary` (between stage b and b+1) use.
    public func link(boundary: Int) -> LinkModel {
        guard let b = boundaries else { return self }
        return b[min(max(0, boundary), b.count - 1)]
    }

    public static let off = LinkModel(name: "off", bitsPerSecond: nil, latency: 0)
    public var isOff: Bool { bitsPerSecond == nil && latency == 0 && (boundaries?.allSatisfy(\.isOff) ?? true) }
    public var description: String { name }

    /// Seconds to push `bytes` through the link, latency excluded.
    public func transferSeconds(bytes: Int) -> Double {
        guard let bps = bitsPerSecond else { return 0 }
        return 8 * Double(bytes) / bps
    }

    /// Named links: consumer connections and a datacenter reference.
    public static let presets: [(name: String, spec: String, about: String)] = [
        ("dsl", "20mbit:30ms", "slow home DSL uplink"),
        ("consumer", "80mbit:20ms", "typical consumer broadband (the paper's 80 Mbit/s)"),
        ("speedrun", "200mbit:50ms", "the Protocol NanoGPT speedrun link"),
        ("fiber", "1gbit:5ms", "home fibre between cities"),
        ("datacenter", "100gbit:0.005ms", "datacenter fabric"),
    ]

    /// Parses "off", a preset name, or BANDWIDTH[:LATENCY] such as "80mbit", "200mbit:50ms",
    /// "1gbit:1ms", "500kbit:0.2s". Units: bit, kbit, mbit, gbit (also kbps/mbps/gbps);
    /// latency us, ms, s.
    public static func parse(_ text: String) throws -> LinkModel {
        if text.contains("/") {
            let parts = try text.split(separator: "/", omittingEmptySubsequences: false).map { try parse(String($0)) }
            let rates = parts.compactMap(\.bitsPerSecond)
            // For tables: the slowest limited boundary and the longest latency.
            var m = LinkModel(name: text, bitsPerSecond: rates.min(), latency: parts.map(\.latency).max() ?? 0)
            m.boundaries = parts
            return m
        }
        let s = text.lowercased().trimmingCharacters(in: .whitespaces)
        if s == "off" || s == "none" { return .off }
        if let p = presets.first(where: { $0.name == s }) {
            var m = try parse(p.spec)
            m.name = p.name
            return m
        }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2 else { throw bad(text) }
        guard let bps = rate(String(parts[0])) else { throw bad(text) }
        var lat = 0.0
        if parts.count == 2 { guard let l = duration(String(parts[1])) else { throw bad(text) }; lat = l }
        return LinkModel(name: text, bitsPerSecond: bps, latency: lat)
    }

    private static func bad(_ text: String) -> LinkError {
        LinkError("--link '\(text)': expected off, a preset (\(presets.map(\.name).joined(separator: ", "))) or BANDWIDTH[:LATENCY] such as 80mbit, 200mbit:50ms, 1gbit:1ms — or one of those per boundary, separated by /")
    }

    private static func split(_ s: String) -> (Double, String)? {
        let i = s.firstIndex { !("0"..."9").contains($0) && $0 != "." } ?? s.endIndex
        guard let v = Double(s[..<i]), v > 0, v.isFinite else { return nil }
        return (v, String(s[i...]))
    }
    private static func rate(_ s: String) -> Double? {
        guard let (v, unit) = split(s) else { return nil }
        let mult: [String: Double] = ["bit": 1, "bps": 1, "kbit": 1e3, "kbps": 1e3, "mbit": 1e6, "mbps": 1e6,
                                      "gbit": 1e9, "gbps": 1e9]
        return mult[unit].map { v * $0 }
    }
    private static func duration(_ s: String) -> Double? {
        if s == "0" { return 0 }
        guard let (v, unit) = split(s) else { return nil }
        let mult: [String: Double] = ["us": 1e-6, "ms": 1e-3, "s": 1]
        return mult[unit].map { v * $0 }
    }
}

/// One direction of one boundary as the receiver sees it: the messages of a single sender,
/// queued first-in-first-out by send time.
public struct InboundLink: Sendable, Equatable {
    public var freeAt: Double = 0
    /// The latest send time charged so far, and how many messages were charged after one
    /// sent later than them (0 when the receiver takes them in send order, as the schedules do).
    public private(set) var lastSentAt = -Double.infinity
    public private(set) var outOfOrder = 0
    public init() {}
    /// When a message of `bytes` sent at `sentAt` may be used. The speedrun model occupies
    /// the link until the message arrives; the streaming model only for the transfer.
    public mutating func arrival(sentAt: Double, bytes: Int, link: LinkModel) -> Double {
        if sentAt < lastSentAt { outOfOrder += 1 }
        lastSentAt = max(lastSentAt, sentAt)
        if link.isOff { return sentAt }
        let start = max(freeAt, sentAt), done = start + link.transferSeconds(bytes: bytes)
        switch link.kind {
        case .speedrun:
            freeAt = done + link.latency
            return freeAt
        case .streaming:
            freeAt = done
            return done + link.latency
        }
    }
}

public enum ClockMode: String, CaseIterable, Sendable {
    case virtual, sleep
}

/// Where a rank's time went for one link during a step.
public struct LinkTiming: Codable, Sendable, Equatable {
    public var linkWait = 0.0    // waiting for bytes in flight (the link was the bottleneck)
    public var bubbleWait = 0.0  // waiting for the neighbour to produce the message (pipeline bubble)
    public var clockEnd = 0.0    // the rank's clock when the step ended
    public init() {}
}

/// A rank's emulated time: one clock per followed link (exactly one in sleep mode).
public final class EmulatedTime {
    public let mode: ClockMode
    public let links: [LinkModel]
    public private(set) var clocks: [Double]
    /// Per followed link, one queue per direction of each boundary (key 2·boundary, +1 for
    /// messages from the later stage). Each queue carries one sender's messages, so charging
    /// in the order they are received is charging in the order they were sent.
    public private(set) var inbound: [[Int: InboundLink]]
    private let epoch: Double
    /// Per-link accumulators for the current step.
    public private(set) var timing: [LinkTiming]
    private var saved: ([Double], [[Int: InboundLink]])?
    private var suspended: Bool { saved != nil }

    /// What one CPU second of compute is charged on the virtual clocks (emulated stage speed).
    public let computeScale: Double

    /// `epoch`: a wall-clock instant every rank agrees on (taken right after a barrier).
    public init(mode: ClockMode, links: [LinkModel], epoch: Double = Clock.wall(), computeScale: Double = 1) {
        precondition(!links.isEmpty, "at least one link (use .off)")
        precondition(mode == .virtual || links.count == 1, "sleep mode follows exactly one link")
        precondition(mode == .virtual || computeScale == 1, "an emulated stage speed needs the virtual clock")
        self.mode = mode; self.links = links; self.epoch = epoch; self.computeScale = computeScale
        clocks = Array(repeating: 0, count: links.count)
        inbound = Array(repeating: [:], count: links.count)
        timing = Array(repeating: LinkTiming(), count: links.count)
    }

    /// The sender's clock per link, stamped into a message.
    public func stamps() -> [Double] {
        mode == .virtual ? clocks : [Clock.wall() - epoch]
    }

    /// Compute that took `seconds` of this rank's thread CPU time (virtual clocks only),
    /// charged at the emulated stage speed.
    public func compute(_ seconds: Double) {
        guard mode == .virtual, !suspended else { return }
        for i in clocks.indices { clocks[i] += seconds * computeScale }
    }

    /// Sleep mode: this rank's clock now.
    public func wallNow() -> Double { Clock.wall() - epoch }

    /// A message of `bytes` with sender clocks `stamps` was received. In sleep mode pass
    /// the wall-clock instants (relative to the epoch) when the receive began and returned;
    /// the call sleeps until the emulated arrival.
    /// `boundary` is the boundary the message crossed, `fromLaterStage` its direction (a
    /// gradient coming back); each direction of each boundary queues on its own.
    public func received(stamps: [Double], bytes: Int, boundary: Int = 0, fromLaterStage: Bool = false,
                         waitBegan: Double = 0, receivedAt: Double = 0) throws {
        guard stamps.count == links.count else {
            throw LinkError("message carries \(stamps.count) clock stamp(s), this rank follows \(links.count) link(s) (do all ranks run the same --link/--clock?)")
        }
        if suspended { return }
        switch mode {
        case .virtual:
            let q = 2 * max(0, boundary) + (fromLaterStage ? 1 : 0)
            for i in links.indices {
                let c = clocks[i], sent = stamps[i]
                let arrive = inbound[i][q, default: InboundLink()].arrival(sentAt: sent, bytes: bytes, link: links[i].link(boundary: boundary))
                timing[i].bubbleWait += max(0, sent - c)
                timing[i].linkWait += max(0, arrive - max(c, sent))
                clocks[i] = max(c, arrive)
            }
        case .sleep:
            let sent = stamps[0], q = 2 * max(0, boundary) + (fromLaterStage ? 1 : 0)
            let arrive = inbound[0][q, default: InboundLink()].arrival(sentAt: sent, bytes: bytes, link: links[0].link(boundary: boundary))
            var now = receivedAt
            if arrive > now { sleepSeconds(arrive - now); now = max(arrive, wallNow()) }
            let bubble = max(0, min(now, sent) - waitBegan)
            timing[0].bubbleWait += bubble
            timing[0].linkWait += max(0, now - waitBegan - bubble)
        }
    }

    /// A data-parallel all-reduce of `bytes` among `replicas` ranks, as a ring over the
    /// emulated link: 2(R−1) hops of bytes/R each. Every clock becomes the group's latest
    /// (`maxClocks`) plus that. Returns the exchange's time on the first link.
    @discardableResult
    public func replicaExchange(maxClocks: [Double], bytes: Int, replicas: Int) -> Double {
        if suspended || replicas < 2 { return 0 }
        func ring(_ l: LinkModel) -> Double {
            l.isOff ? 0 : Double(2 * (replicas - 1)) * (l.latency + l.transferSeconds(bytes: (bytes + replicas - 1) / replicas))
        }
        let first = ring(links[0])
        switch mode {
        case .virtual:
            for i in clocks.indices { clocks[i] = max(clocks[i], maxClocks.count > i ? maxClocks[i] : 0) + ring(links[i]) }
        case .sleep:
            if first > 0 { sleepSeconds(first) }
        }
        return first
    }

    /// The all-reduce of the gradient norm: every clock becomes the latest rank's clock
    /// (`maxClocks`, all-reduced with max) plus a reduce-and-broadcast tree over `ranks`
    /// ranks on the emulated link (2·⌈log2 ranks⌉ latencies of a scalar message).
    public func allreduced(maxClocks: [Double], ranks: Int) {
        if suspended { return }
        guard mode == .virtual else {
            let c = Self.allreduceSeconds(ranks: ranks, link: links[0])
            if c > 0 { sleepSeconds(c) }
            return
        }
        for i in clocks.indices { clocks[i] = maxClocks[i] + Self.allreduceSeconds(ranks: ranks, link: links[i]) }
    }

    public static func allreduceSeconds(ranks: Int, link: LinkModel) -> Double {
        guard ranks > 1, !link.isOff else { return 0 }
        var depth = 0
        while (1 << depth) < ranks { depth += 1 }
        return Double(2 * depth) * (link.latency + link.transferSeconds(bytes: 8))
    }

    /// Starts a step's accounting; returns nothing, timing resets.
    public func beginStep() { timing = Array(repeating: LinkTiming(), count: links.count) }

    /// Ends a step: records the clocks.
    public func endStep() {
        for i in links.indices { timing[i].clockEnd = mode == .virtual ? clocks[i] : wallNow() }
    }

    /// Evaluation does not advance emulated time: save before, restore after.
    public func suspend() { if saved == nil { saved = (clocks, inbound) } }
    public func resume() { if let s = saved { clocks = s.0; inbound = s.1; saved = nil } }

    private func sleepSeconds(_ s: Double) {
        var ts = timespec(tv_sec: Int(s), tv_nsec: Int((s - Double(Int(s))) * 1e9))
        var rest = timespec()
        while nanosleep(&ts, &rest) != 0 { ts = rest }
    }
}

// Point-to-point transport between stages and the few collectives a step needs. Two
// implementations: MPI (ProtoMPI) and in-memory threads (tests, one process).
import Foundation

public protocol StageLink: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Starts sending `buf` to `dest`; the link keeps it alive until `waitSends`.
    func send(_ buf: WireBuffer, to dest: Int, tag: Int) throws
    /// Blocks until the next message with `tag` from `source` arrives.
    func recv(from source: Int, tag: Int) throws -> WireBuffer
    /// Completes every send started so far.
    func waitSends() throws
    /// Element-wise sum over all ranks, identical on every rank.
    func allreduceSum(_ values: [Double]) throws -> [Double]
    /// Element-wise maximum over all ranks, identical on every rank.
    func allreduceMax(_ values: [Double]) throws -> [Double]
    func barrier() throws
    /// Lets the transport move messages in flight (called between kernels while computing).
    func progress()
}

/// Message kinds; the tag of a message is kind·4096 + (micro-batch or index) mod 4096, so
/// every tag stays within 0...32767, the bound every MPI guarantees. Messages between two
/// ranks with one tag arrive in the order they were sent, so the wrap-around is harmless.
public enum MessageKind: UInt32, Sendable, CaseIterable {
    case forward = 1, backward = 2, targets = 3
    /// Partial gradients and copies of shared manifold tensors (adaptive U, projectors).
    case sync = 4
    /// A stage's parameters gathered to rank 0 at the end of a run.
    case parameters = 5
    /// Bytes gathered to or broadcast from one rank (settings, metrics, checksums).
    case control = 6
    /// Data-parallel traffic between replicas of a stage (gradients, parameters) and the
    /// micro-batches rank 0 sends to other replicas' first stages.
    case replica = 7
    public static let stride = 4096
    public func tag(_ index: Int) -> Int { Int(rawValue) * Self.stride + index % Self.stride }

    /// "the backward message of micro-batch 3" for a tag, in error messages.
    public static func describe(tag: Int) -> String {
        guard let k = MessageKind(rawValue: UInt32(tag / stride)) else { return "the message with tag \(tag)" }
        let i = tag % stride
        switch k {
        case .forward, .backward, .targets: return "the \(k) message of micro-batch \(i)"
        case .sync: return "a shared-basis message (\(i))"
        case .parameters: return "the stage parameters"
        case .control: return "a start-up or metrics message"
        case .replica: return "a data-parallel message (\(i))"
        }
    }
}

/// The paired calls a stage makes on its link. Each names the call it pairs with on the
/// neighbouring stage; the schedule guarantees every send has its receive.
public struct StageComm {
    public let link: StageLink
    public let stage: Int
    public let stages: Int
    /// Data-parallel replicas of the pipeline: replica r's stage s is world rank r·stages + s,
    /// so the ranks of one replica are consecutive (packed on a node by the launcher).
    public let replica: Int
    public let replicas: Int
    /// Clocks stamped into every message, one per emulated link (read at the receiver).
    public var clock: () -> [Double] = { [0] }

    public init(link: StageLink, stage: Int, stages: Int, replica: Int = 0, replicas: Int = 1) {
        self.link = link; self.stage = stage; self.stages = stages; self.replica = replica; self.replicas = replicas
    }

    /// World rank of `stage` in this replica.
    public func rank(ofStage s: Int) -> Int { replica * stages + s }
    /// World ranks holding this stage, one per replica (the data-parallel group), in replica order.
    public var replicaGroup: [Int] { (0..<replicas).map { $0 * stages + stage } }

    private func stamp(_ b: WireBuffer, _ kind: MessageKind, _ m: Int) {
        b.kind = kind.rawValue; b.microbatch = UInt32(m); b.stamps = clock()
    }

    /// Pairs with `recvForward` on stage + 1.
    public func sendForward(_ m: Int, _ b: WireBuffer) throws {
        stamp(b, .forward, m); try link.send(b, to: rank(ofStage: stage + 1), tag: MessageKind.forward.tag(m))
    }
    /// Pairs with `sendForward` on stage − 1.
    public func recvForward(_ m: Int) throws -> WireBuffer {
        try checked(link.recv(from: rank(ofStage: stage - 1), tag: MessageKind.forward.tag(m)), .forward, m, from: rank(ofStage: stage - 1))
    }
    /// Pairs with `recvBackward` on stage − 1.
    public func sendBackward(_ m: Int, _ b: WireBuffer) throws {
        stamp(b, .backward, m); try link.send(b, to: rank(ofStage: stage - 1), tag: MessageKind.backward.tag(m))
    }
    /// Pairs with `sendBackward` on stage + 1.
    public func recvBackward(_ m: Int) throws -> WireBuffer {
        try checked(link.recv(from: rank(ofStage: stage + 1), tag: MessageKind.backward.tag(m)), .backward, m, from: rank(ofStage: stage + 1))
    }
    /// First stage only; pairs with `recvTargets` on the last stage.
    public func sendTargets(_ m: Int, _ b: WireBuffer) throws {
        stamp(b, .targets, m); try link.send(b, to: rank(ofStage: stages - 1), tag: MessageKind.targets.tag(m))
    }
    /// Last stage only; pairs with `sendTargets` on the first stage.
    public func recvTargets(_ m: Int) throws -> WireBuffer {
        try checked(link.recv(from: rank(ofStage: 0), tag: MessageKind.targets.tag(m)), .targets, m, from: rank(ofStage: 0))
    }

    /// A shared-state message to stage `peer` of this replica (adaptive U, projectors); pairs
    /// with `recvSync` there.
    public func sendSync(_ index: Int, to peer: Int, _ b: WireBuffer) throws {
        stamp(b, .sync, index); try link.send(b, to: rank(ofStage: peer), tag: MessageKind.sync.tag(index))
    }
    /// Pairs with `sendSync(index, to: this stage)` on stage `peer` of this replica.
    public func recvSync(_ index: Int, from peer: Int) throws -> WireBuffer {
        try checked(link.recv(from: rank(ofStage: peer), tag: MessageKind.sync.tag(index)), .sync, index, from: rank(ofStage: peer))
    }

    /// A data-parallel message to world rank `peer` of this stage's replica group; pairs with
    /// `recvReplica` there.
    public func sendReplica(_ index: Int, to peer: Int, _ b: WireBuffer) throws {
        stamp(b, .replica, index); try link.send(b, to: peer, tag: MessageKind.replica.tag(index))
    }
    public func recvReplica(_ index: Int, from peer: Int) throws -> WireBuffer {
        try checked(link.recv(from: peer, tag: MessageKind.replica.tag(index)), .replica, index, from: peer)
    }

    private func checked(_ b: WireBuffer, _ kind: MessageKind, _ m: Int, from: Int) throws -> WireBuffer {
        guard b.count >= WireBuffer.headerBytes, b.kind == kind.rawValue, Int(b.microbatch) == m else {
            throw LinkError("stage \(stage): expected \(kind) message for micro-batch \(m) from rank \(from), got kind \(b.kind) micro-batch \(b.microbatch) (\(b.count) bytes)")
        }
        return b
    }
}

extension StageLink {
    public func progress() {}

    /// Every rank's bytes at `root` (in rank order), nil elsewhere. Point-to-point, so a rank
    /// that never arrives ends in the receive timeout, not a hang. `purpose` names the gather:
    /// every rank must be at the same one, and the root stops the job when a rank's message
    /// belongs to another (ranks out of step) instead of reading it as this one's.
    public func gatherData(_ data: Data, root: Int, purpose: String) throws -> [Data]? {
        let tag = MessageKind.control.tag(0)
        let mark = Self.purposeMark(purpose)
        if rank != root {
            let b = Self.message(data)
            b.microbatch = mark
            try send(b, to: root, tag: tag)
            try waitSends()
            return nil
        }
        return try (0..<size).map { r in
            if r == root { return data }
            let b = try recv(from: r, tag: tag)
            guard b.microbatch == mark else {
                throw LinkError("rank \(root) gathering \(purpose) got another gather's message from rank \(r): the ranks are out of step")
            }
            return Data(bytes: b.payload, count: b.payloadBytes)
        }
    }

    /// FNV-1a 32 of the purpose's UTF-8 bytes: the same on every rank and build.
    static func purposeMark(_ purpose: String) -> UInt32 {
        purpose.utf8.reduce(UInt32(2_166_136_261)) { ($0 ^ UInt32($1)) &* 16_777_619 }
    }

    /// `root`'s bytes on every rank.
    public func broadcastData(_ data: Data?, root: Int) throws -> Data {
        let tag = MessageKind.control.tag(1)
        if rank == root {
            guard let data else { preconditionFailure("broadcastData: the root passes the bytes") }
            for r in 0..<size where r != root {
                try send(Self.message(data), to: r, tag: tag)
            }
            try waitSends()
            return data
        }
        let b = try recv(from: root, tag: tag)
        return Data(bytes: b.payload, count: b.payloadBytes)
    }

    /// Bytes as a message with the usual header (so no message is shorter than 16 bytes).
    static func message(_ data: Data) -> WireBuffer {
        let b = WireBuffer(payloadBytes: data.count)
        b.kind = MessageKind.control.rawValue
        data.withUnsafeBytes { if $0.count > 0 { b.payload.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        return b
    }
}

// All stages inside one process, one thread each: the same protocol as MPI, for tests.
import Foundation

/// Shared mailboxes and collective state of an in-process "world".
public final class InMemoryHub: @unchecked Sendable {
    public let size: Int
    /// A receive waiting longer than this fails (a hung test becomes an error).
    public var timeout: TimeInterval = 60
    private let cond = NSCondition()
    private var boxes: [Key: [WireBuffer]] = [:]
    private struct Key: Hashable { var src: Int, dst: Int, tag: Int }
    // Collectives: deposits of the current generation.
    private var deposits: [[Double]?]
    private var generation = 0
    private var arrived = 0
    private var result: [[Double]] = []

    public init(size: Int) { self.size = size; deposits = Array(repeating: nil, count: size) }

    public func links() -> [InMemoryLink] { (0..<size).map { InMemoryLink(rank: $0, hub: self) } }

    func post(_ b: WireBuffer, src: Int, dst: Int, tag: Int) {
        cond.lock(); boxes[Key(src: src, dst: dst, tag: tag), default: []].append(b); cond.broadcast(); cond.unlock()
    }

    func take(src: Int, dst: Int, tag: Int) throws -> WireBuffer {
        let k = Key(src: src, dst: dst, tag: tag)
        let deadline = Date().addingTimeInterval(timeout)
        cond.lock(); defer { cond.unlock() }
        while boxes[k]?.isEmpty ?? true {
            if !cond.wait(until: deadline) {
                throw LinkError("rank \(dst): waited \(Int(timeout)) s for \(MessageKind.describe(tag: tag)) from rank \(src); that rank is stuck or dead")
            }
        }
        return boxes[k]!.removeFirst()
    }

    /// Every rank deposits; all get every rank's values in rank order. A rank that waits
    /// longer than `timeout` for the others fails, as an MPI collective does with --recv-timeout.
    func exchange(_ v: [Double], rank: Int) throws -> [[Double]] {
        cond.lock(); defer { cond.unlock() }
        let gen = generation
        deposits[rank] = v
        arrived += 1
        if arrived == size {
            result = deposits.map { $0! }
            deposits = Array(repeating: nil, count: size)
            arrived = 0
            generation += 1
            cond.broadcast()
        } else {
            let deadline = Date().addingTimeInterval(timeout)
            while generation == gen {
                if !cond.wait(until: deadline) && generation == gen {
                    throw LinkError("rank \(rank): waited \(Int(timeout)) s for a collective; another rank is stuck or dead")
                }
            }
        }
        return result
    }
}

public final class InMemoryLink: StageLink {
    public let rank: Int
    let hub: InMemoryHub
    public var size: Int { hub.size }

    init(rank: Int, hub: InMemoryHub) { self.rank = rank; self.hub = hub }

    public func send(_ buf: WireBuffer, to dest: Int, tag: Int) throws {
        guard (0..<size).contains(dest) else { throw LinkError("rank \(rank): send to rank \(dest) outside 0..<\(size)") }
        hub.post(buf, src: rank, dst: dest, tag: tag)
    }
    public func recv(from source: Int, tag: Int) throws -> WireBuffer { try hub.take(src: source, dst: rank, tag: tag) }
    public func waitSends() throws {}
    public func allreduceSum(_ values: [Double]) throws -> [Double] {
        // Summed in rank order on every rank, so all ranks see bit-identical results.
        try hub.exchange(values, rank: rank).reduce(into: [Double](repeating: 0, count: values.count)) { acc, v in
            for i in 0..<acc.count { acc[i] += v[i] }
        }
    }
    public func allreduceMax(_ values: [Double]) throws -> [Double] {
        try hub.exchange(values, rank: rank).reduce(into: [Double](repeating: -.infinity, count: values.count)) { acc, v in
            for i in 0..<acc.count { acc[i] = max(acc[i], v[i]) }
        }
    }
    public func barrier() throws { _ = try hub.exchange([], rank: rank) }
}

/// Runs `body(rank)` on `size` threads and waits for all; rethrows the first error.
public func runOnThreads(_ size: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    let group = DispatchGroup()
    let lock = NSLock()
    nonisolated(unsafe) var firstError: Error?
    for r in 0..<size {
        group.enter()
        let t = Thread {
            do { try body(r) } catch { lock.lock(); if firstError == nil { firstError = error }; lock.unlock() }
            group.leave()
        }
        t.stackSize = 16 << 20
        t.start()
    }
    group.wait()
    if let e = firstError { throw e }
}

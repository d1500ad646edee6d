// The stage link over MPI point-to-point messages on MPI_COMM_WORLD.
import CMPI
import Foundation
import ProtoPipeline

public final class MPILink: StageLink {
    public let rank: Int
    public let size: Int
    /// A receive that waits longer than this fails, naming the peer and message (0 = wait forever).
    public var recvTimeout: Double
    private var pending: [(MPI_Request?, WireBuffer)] = []
    /// Largest single MPI message in bytes; bigger messages travel in pieces. The default,
    /// 60 KiB, keeps every piece under the TCP transport's 64 KiB eager limit: a larger
    /// message goes by rendezvous, whose clear-to-send reply queues on the same TCP
    /// connection behind the other direction's bulk data, so a slow link carried activations
    /// and gradients one after the other instead of both at once (dense at 20 Mbit/s: 1.80 s
    /// per step in one piece, 1.43 s in pieces, emulator 1.27 s). It also keeps MPI's 32-bit
    /// counts safe. PROTOMODEL_MAX_MESSAGE_BYTES sets it (64...2147483647 bytes).
    public let maxMessageBytes: Int

    public init(recvTimeout: Double = 0) throws {
        try MPIEnv.initialize()
        rank = MPIEnv.rank; size = MPIEnv.size
        self.recvTimeout = recvTimeout
        maxMessageBytes = try Self.messageLimit(ProcessInfo.processInfo.environment["PROTOMODEL_MAX_MESSAGE_BYTES"])
    }

    public static let defaultMessageLimit = 60 << 10

    /// The piece size: `defaultMessageLimit`, or what the environment sets (64...2147483647).
    public static func messageLimit(_ text: String?) throws -> Int {
        guard let text else { return defaultMessageLimit }
        guard let n = Int(text.trimmingCharacters(in: .whitespaces)), (64...Int(Int32.max)).contains(n) else {
            throw LinkError("PROTOMODEL_MAX_MESSAGE_BYTES='\(text)': must be a whole number of bytes in 64...2147483647 (unset it for the default 60 KiB)")
        }
        return n
    }

    /// Bytes of the announcement that precedes a message sent in pieces: the total size as an
    /// Int64. Every real message is at least a 16-byte header, so an 8-byte one is unambiguous.
    static let announcementBytes = 8

    public func send(_ buf: WireBuffer, to dest: Int, tag: Int) throws {
        var out = buf
        if !buf.extraStamps.isEmpty {
            // Emulator stamps for further links travel after the counted bytes.
            out = WireBuffer(totalBytes: buf.count + 8 * buf.extraStamps.count)
            out.raw.copyMemory(from: buf.raw, byteCount: buf.count)
            for (i, s) in buf.extraStamps.enumerated() { out.raw.storeBytes(of: s, toByteOffset: buf.count + 8 * i, as: Double.self) }
        }
        if out.count <= maxMessageBytes {
            try isend(out, out.raw, out.count, dest, tag)
            return
        }
        // In pieces: the announcement, then ⌈count / limit⌉ pieces on the same tag (MPI keeps
        // the order of messages between two ranks with one tag).
        let note = WireBuffer(totalBytes: Self.announcementBytes)
        note.raw.storeBytes(of: Int64(out.count), as: Int64.self)
        try isend(note, note.raw, note.count, dest, tag)
        var offset = 0
        while offset < out.count {
            let n = min(maxMessageBytes, out.count - offset)
            try isend(out, out.raw + offset, n, dest, tag)
            offset += n
        }
    }

    private func isend(_ owner: WireBuffer, _ p: UnsafeMutableRawPointer, _ n: Int, _ dest: Int, _ tag: Int) throws {
        var req: MPI_Request? = pm_request_null()
        try check(MPI_Isend(p, Int32(n), pm_type_byte(), Int32(dest), Int32(tag), pm_comm_world(), &req),
                  "MPI_Isend(\(n) bytes to rank \(dest), tag \(tag))")
        pending.append((req, owner))  // the buffer stays alive (pinned) until waitSends
    }

    /// Messages whose envelope has arrived, each with a receive already posted into its own
    /// buffer, in arrival order per (source, tag) — MPI matches messages between two ranks on
    /// one tag in the order they were sent, so this order is the send order.
    private var announced: [Int: [(request: MPI_Request?, buffer: WireBuffer)]] = [:]
    private var abandoned: [WireBuffer] = []

    /// Posts a receive for every message that has been announced to this rank and not yet
    /// received. A message above the transport's eager limit (64 KB on TCP) moves only once
    /// its receive is posted (rendezvous), so posting as soon as it is announced — from
    /// `progress()` during compute, and while waiting for anything else — lets it cross the
    /// link while this rank computes, as the emulator assumes; on shared memory it changes
    /// nothing. Receiving every point-to-point message this way is safe because every
    /// receive on MPI_COMM_WORLD goes through `recv`.
    private func postAnnouncedReceives() throws {
        for _ in 0..<256 {
            var flag: Int32 = 0
            var status = MPI_Status()
            try check(MPI_Iprobe(pm_any_source(), pm_any_tag(), pm_comm_world(), &flag, &status), "MPI_Iprobe(any source, any tag)")
            guard flag != 0 else { return }
            var count: Int32 = 0
            try check(MPI_Get_count(&status, pm_type_byte(), &count), "MPI_Get_count")
            let source = Int(status.MPI_SOURCE), tag = Int(status.MPI_TAG)
            guard count >= 0 else { throw LinkError("rank \(rank): message from rank \(source) (tag \(tag)) has an undefined size") }
            let buffer = WireBuffer(totalBytes: Int(count))
            var request: MPI_Request? = pm_request_null()
            try check(MPI_Irecv(buffer.raw, count, pm_type_byte(), Int32(source), Int32(tag), pm_comm_world(), &request),
                      "MPI_Irecv(\(count) bytes from rank \(source), tag \(tag))")
            announced[source << 16 | tag, default: []].append((request, buffer))
        }
    }

    /// The next whole message from `source` with `tag`, exactly as sent (pieces not joined).
    private func nextMessage(_ source: Int, _ tag: Int) throws -> WireBuffer {
        let key = source << 16 | tag
        let what = "\(describe(tag)) from rank \(source)"
        try poll(what) { flag in flag = announced[key]?.isEmpty == false ? 1 : 0 }
        var (request, buffer) = announced[key]!.removeFirst()
        if announced[key]!.isEmpty { announced[key] = nil }
        do {
            try poll(what) { flag in try check(MPI_Test(&request, &flag, nil), "MPI_Test(receive from rank \(source), tag \(tag))") }
        } catch {
            abandoned.append(buffer)  // the receive is still posted: MPI may yet write into it
            throw error
        }
        return buffer
    }

    /// Waits (polling, backing off from spinning to sleeping: on an oversubscribed machine a
    /// waiting rank must leave the cores to the ranks that compute) for the next message from
    /// `source` with `tag`, joining a message sent in pieces.
    public func recv(from source: Int, tag: Int) throws -> WireBuffer {
        let first = try nextMessage(source, tag)
        let buf: WireBuffer
        if first.count == Self.announcementBytes {
            let total = first.raw.loadUnaligned(as: Int64.self)
            guard total > Int64(WireBuffer.headerBytes), total <= Int64(Int.max / 2) else {
                throw LinkError("rank \(rank): rank \(source) announced a message of \(total) bytes (tag \(tag)); ranks run different protomodel builds?")
            }
            buf = WireBuffer(totalBytes: Int(total))
            var offset = 0
            while offset < buf.count {
                let piece = try nextMessage(source, tag)
                guard piece.count > 0, offset + piece.count <= buf.count else {
                    throw LinkError("rank \(rank): piece of \(piece.count) bytes from rank \(source) overruns its \(buf.count)-byte message (tag \(tag))")
                }
                (buf.raw + offset).copyMemory(from: piece.raw, byteCount: piece.count)
                offset += piece.count
            }
        } else {
            buf = first
        }
        guard buf.count >= WireBuffer.headerBytes else { return buf }
        let extra = max(0, buf.stampCount - 1)
        guard extra > 0 else { return buf }
        guard buf.count >= WireBuffer.headerBytes + 8 * extra else {
            throw LinkError("rank \(rank): message from rank \(source) (tag \(tag)) claims \(extra) extra clock stamps but has \(buf.count) bytes")
        }
        let body = WireBuffer(totalBytes: buf.count - 8 * extra)
        body.raw.copyMemory(from: buf.raw, byteCount: body.count)
        body.extraStamps = (0..<extra).map { buf.raw.loadUnaligned(fromByteOffset: body.count + 8 * $0, as: Double.self) }
        return body
    }

    private var lastProgress = 0.0

    /// Called between kernels while this rank computes: at most every 100 µs, enters MPI's
    /// progress engine and posts receives for newly announced messages, so rendezvous
    /// transfers (TCP messages above the eager limit) move in both directions meanwhile.
    /// An MPI error here is left for the next `recv` to report.
    public func progress() {
        let now = Clock.wall()
        guard now - lastProgress > 1e-4 else { return }
        lastProgress = now
        try? postAnnouncedReceives()
    }

    public func waitSends() throws {
        var reqs = pending.map { $0.0 }
        if !reqs.isEmpty {
            try poll("completing \(reqs.count) send(s)") { flag in
                try check(MPI_Testall(Int32(reqs.count), &reqs, &flag, nil), "MPI_Testall(\(reqs.count) sends)")
            }
        }
        pending.removeAll()
    }

    // Collectives are non-blocking calls completed by polling with the receive timeout, so a
    // stopped or dead rank ends the job instead of hanging it, and a waiting rank sleeps.

    public func allreduceSum(_ values: [Double]) throws -> [Double] {
        try allreduce(values, pm_op_sum(), "sum")
    }

    public func allreduceMax(_ values: [Double]) throws -> [Double] {
        try allreduce(values, pm_op_max(), "max")
    }

    /// Runs a non-blocking collective on heap copies of its buffers (`send` values in, `recvCount`
    /// out). If polling gives up, the collective is still pending inside MPI and may yet
    /// write its output, so both buffers are deliberately left allocated (the run is ending).
    private func collective(_ send: [Double], recvCount: Int, _ what: String,
                            _ start: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>, inout MPI_Request?) throws -> Void) throws -> [Double] {
        let input = UnsafeMutablePointer<Double>.allocate(capacity: max(1, send.count))
        let output = UnsafeMutablePointer<Double>.allocate(capacity: max(1, recvCount))
        send.withUnsafeBufferPointer { if let b = $0.baseAddress { input.initialize(from: b, count: send.count) } }
        output.initialize(repeating: 0, count: max(1, recvCount))
        var req: MPI_Request? = pm_request_null()
        do {
            try start(input, output, &req)
            try poll(what) { flag in try check(MPI_Test(&req, &flag, nil), "MPI_Test") }
        } catch {
            if req == pm_request_null() { input.deallocate(); output.deallocate() }  // else still pending: leak them
            throw error
        }
        let result = Array(UnsafeBufferPointer(start: output, count: recvCount))
        input.deallocate(); output.deallocate()
        return result
    }

    private func allreduce(_ values: [Double], _ op: MPI_Op?, _ what: String) throws -> [Double] {
        try collective(values, recvCount: values.count, "an all-reduce (\(what)) of \(values.count) value(s)") { i, o, req in
            try check(MPI_Iallreduce(i, o, Int32(values.count), pm_type_double(), op, pm_comm_world(), &req),
                      "MPI_Iallreduce(\(what), \(values.count) doubles)")
        }
    }

    public func barrier() throws {
        _ = try collective([], recvCount: 0, "a barrier") { _, _, req in
            try check(MPI_Ibarrier(pm_comm_world(), &req), "MPI_Ibarrier")
        }
    }

    /// Calls `test` until it sets its flag, backing off from spinning to 1 ms sleeps; fails
    /// after the receive timeout naming what was waited for.
    private func poll(_ what: String, _ test: (inout Int32) throws -> Void) throws {
        var flag: Int32 = 0
        let start = Clock.wall()
        var nap: UInt32 = 0
        while true {
            try postAnnouncedReceives()  // whatever this rank waits for, others' messages move
            try test(&flag)
            if flag != 0 { return }
            if recvTimeout > 0 && Clock.wall() - start > recvTimeout {
                throw LinkError("rank \(rank): waited \(Int(recvTimeout)) s for \(what); another rank is stuck or dead (raise --recv-timeout for very slow steps)")
            }
            if nap > 0 { usleep(nap) }
            nap = min(max(nap * 2, 20), 1000)
        }
    }

    private func describe(_ tag: Int) -> String { MessageKind.describe(tag: tag) }
}

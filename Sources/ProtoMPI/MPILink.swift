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
    /// Largest single MPI message in bytes; bigger boundary messages travel in pieces (MPI
    /// counts are 32-bit). PROTOMODEL_MAX_MESSAGE_BYTES lowers it (tests use small pieces).
    public let maxMessageBytes: Int

    public init(recvTimeout: Double = 0) throws {
        try MPIEnv.initialize()
        rank = MPIEnv.rank; size = MPIEnv.size
        self.recvTimeout = recvTimeout
        maxMessageBytes = try Self.messageLimit(ProcessInfo.processInfo.environment["PROTOMODEL_MAX_MESSAGE_BYTES"])
    }

    /// Default 1 GiB; the environment may set 64...2147483647.
    public static func messageLimit(_ text: String?) throws -> Int {
        guard let text else { return 1 << 30 }
        guard let n = Int(text.trimmingCharacters(in: .whitespaces)), (64...Int(Int32.max)).contains(n) else {
            throw LinkError("PROTOMODEL_MAX_MESSAGE_BYTES='\(text)': must be a whole number of bytes in 64...2147483647 (unset it for the default 1 GiB)")
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

    /// Polls with MPI_Iprobe, backing off from spinning to sleeping: on an oversubscribed
    /// machine a waiting rank must leave the cores to the ranks that compute.
    public func recv(from source: Int, tag: Int) throws -> WireBuffer {
        var count = try probe(source, tag)
        let buf: WireBuffer
        if count == Self.announcementBytes {
            var total: Int64 = 0
            try check(MPI_Recv(&total, 8, pm_type_byte(), Int32(source), Int32(tag), pm_comm_world(), nil), "MPI_Recv(announcement from rank \(source))")
            guard total > Int64(WireBuffer.headerBytes), total <= Int64(Int.max / 2) else {
                throw LinkError("rank \(rank): rank \(source) announced a message of \(total) bytes (tag \(tag)); ranks run different protomodel builds?")
            }
            buf = WireBuffer(totalBytes: Int(total))
            var offset = 0
            while offset < buf.count {
                count = try probe(source, tag)
                guard count > 0, offset + Int(count) <= buf.count else {
                    throw LinkError("rank \(rank): piece of \(count) bytes from rank \(source) overruns its \(buf.count)-byte message (tag \(tag))")
                }
                try check(MPI_Recv(buf.raw + offset, count, pm_type_byte(), Int32(source), Int32(tag), pm_comm_world(), nil),
                          "MPI_Recv(\(count) bytes from rank \(source), tag \(tag))")
                offset += Int(count)
            }
        } else {
            buf = WireBuffer(totalBytes: Int(count))
            try check(MPI_Recv(buf.raw, count, pm_type_byte(), Int32(source), Int32(tag), pm_comm_world(), nil),
                      "MPI_Recv(\(count) bytes from rank \(source), tag \(tag))")
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

    /// Waits for the next message from `source` with `tag` and returns its byte count.
    private func probe(_ source: Int, _ tag: Int) throws -> Int32 {
        var status = MPI_Status()
        try poll("\(describe(tag)) from rank \(source)") { flag in
            try check(MPI_Iprobe(Int32(source), Int32(tag), pm_comm_world(), &flag, &status), "MPI_Iprobe(rank \(source), tag \(tag))")
        }
        var count: Int32 = 0
        try check(MPI_Get_count(&status, pm_type_byte(), &count), "MPI_Get_count")
        guard count >= 0 else { throw LinkError("rank \(rank): message from rank \(source) (tag \(tag)) has an undefined size") }
        return count
    }

    private var lastProgress = 0.0

    /// Enters MPI's progress engine (one MPI_Iprobe on any source) at most every 100 µs, so
    /// rendezvous transfers (TCP messages above the eager limit) move while this rank
    /// computes instead of waiting for its next receive.
    public func progress() {
        let now = Clock.wall()
        guard now - lastProgress > 1e-4 else { return }
        lastProgress = now
        var flag: Int32 = 0
        var status = MPI_Status()
        _ = MPI_Iprobe(pm_any_source(), pm_any_tag(), pm_comm_world(), &flag, &status)
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

    public func gather(_ values: [Double], root: Int) throws -> [[Double]]? {
        let n = values.count
        let all = try collective(values, recvCount: rank == root ? n * size : 0, "a gather of \(n) value(s) to rank \(root)") { i, o, req in
            try check(MPI_Igather(i, Int32(n), pm_type_double(), o, Int32(n), pm_type_double(), Int32(root), pm_comm_world(), &req),
                      "MPI_Igather(\(n) doubles to rank \(root))")
        }
        guard rank == root else { return nil }
        return (0..<size).map { Array(all[($0 * n)..<(($0 + 1) * n)]) }
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

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

    public init(recvTimeout: Double = 0) throws {
        try MPIEnv.initialize()
        rank = MPIEnv.rank; size = MPIEnv.size
        self.recvTimeout = recvTimeout
    }

    public func send(_ buf: WireBuffer, to dest: Int, tag: Int) throws {
        var out = buf
        if !buf.extraStamps.isEmpty {
            // Emulator stamps for further links travel after the counted bytes.
            out = WireBuffer(totalBytes: buf.count + 8 * buf.extraStamps.count)
            out.raw.copyMemory(from: buf.raw, byteCount: buf.count)
            for (i, s) in buf.extraStamps.enumerated() { out.raw.storeBytes(of: s, toByteOffset: buf.count + 8 * i, as: Double.self) }
        }
        var req: MPI_Request? = pm_request_null()
        try check(MPI_Isend(out.raw, Int32(out.count), pm_type_byte(), Int32(dest), Int32(tag), pm_comm_world(), &req),
                  "MPI_Isend(\(out.count) bytes to rank \(dest), tag \(tag))")
        pending.append((req, out))  // the buffer stays alive (pinned) until waitSends
    }

    /// Polls with MPI_Iprobe, backing off from spinning to sleeping: on an oversubscribed
    /// machine a waiting rank must leave the cores to the ranks that compute.
    public func recv(from source: Int, tag: Int) throws -> WireBuffer {
        var status = MPI_Status()
        var flag: Int32 = 0
        let start = Clock.wall()
        var nap: UInt32 = 0
        while true {
            try check(MPI_Iprobe(Int32(source), Int32(tag), pm_comm_world(), &flag, &status),
                      "MPI_Iprobe(rank \(source), tag \(tag))")
            if flag != 0 { break }
            if recvTimeout > 0 && Clock.wall() - start > recvTimeout {
                throw LinkError("rank \(rank): waited \(Int(recvTimeout)) s for \(describe(tag)) from rank \(source); that rank is stuck or dead (raise --recv-timeout for very slow steps)")
            }
            if nap > 0 { usleep(nap) }
            nap = min(max(nap * 2, 20), 1000)
        }
        var count: Int32 = 0
        try check(MPI_Get_count(&status, pm_type_byte(), &count), "MPI_Get_count")
        let buf = WireBuffer(totalBytes: Int(count))
        try check(MPI_Recv(buf.raw, count, pm_type_byte(), Int32(source), Int32(tag), pm_comm_world(), nil),
                  "MPI_Recv(\(count) bytes from rank \(source), tag \(tag))")
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

    public func waitSends() throws {
        var reqs = pending.map { $0.0 }
        if !reqs.isEmpty {
            try check(MPI_Waitall(Int32(reqs.count), &reqs, nil), "MPI_Waitall(\(reqs.count) sends)")
        }
        pending.removeAll()
    }

    public func allreduceSum(_ values: [Double]) throws -> [Double] {
        var out = [Double](repeating: 0, count: values.count)
        try check(MPI_Allreduce(values, &out, Int32(values.count), pm_type_double(), pm_op_sum(), pm_comm_world()),
                  "MPI_Allreduce(\(values.count) doubles)")
        return out
    }

    public func allreduceMax(_ values: [Double]) throws -> [Double] {
        var out = [Double](repeating: 0, count: values.count)
        try check(MPI_Allreduce(values, &out, Int32(values.count), pm_type_double(), pm_op_max(), pm_comm_world()),
                  "MPI_Allreduce(max, \(values.count) doubles)")
        return out
    }

    public func gather(_ values: [Double], root: Int) throws -> [[Double]]? {
        let n = values.count
        var all = [Double](repeating: 0, count: rank == root ? n * size : 1)
        try check(MPI_Gather(values, Int32(n), pm_type_double(), &all, Int32(n), pm_type_double(), Int32(root), pm_comm_world()),
                  "MPI_Gather(\(n) doubles to rank \(root))")
        guard rank == root else { return nil }
        return (0..<size).map { Array(all[($0 * n)..<(($0 + 1) * n)]) }
    }

    public func barrier() throws { try check(MPI_Barrier(pm_comm_world()), "MPI_Barrier") }

    private func describe(_ tag: Int) -> String {
        let kind = MessageKind(rawValue: UInt32(tag / 8192)).map { "\($0)" } ?? "message"
        return "the \(kind) message of micro-batch \(tag % 8192)"
    }
}

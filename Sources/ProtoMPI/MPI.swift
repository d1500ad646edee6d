// A thin, checked wrapper over the MPI C API (OpenMPI). Every call's return code is
// checked and turned into an error that names the call.
import CMPI
import Foundation

public struct MPIError: Error, CustomStringConvertible {
    public var call: String
    public var code: Int32
    public var description: String {
        var buf = [CChar](repeating: 0, count: Int(pm_max_error_string()) + 1)
        var len: Int32 = 0
        MPI_Error_string(code, &buf, &len)
        return "\(call) failed: \(String(cString: buf)) (code \(code))"
    }
}

@inline(__always)
func check(_ rc: Int32, _ call: @autoclosure () -> String) throws {
    if rc != pm_success() { throw MPIError(call: call(), code: rc) }
}

public enum MPIEnv {
    nonisolated(unsafe) private static var started = false

    /// Initialises MPI once per process (singleton mode works without mpirun). Errors are
    /// returned to us rather than aborting, so they can be reported with context.
    public static func initialize() throws {
        var flag: Int32 = 0
        MPI_Initialized(&flag)
        if flag != 0 { started = true; return }
        try check(MPI_Init(nil, nil), "MPI_Init")
        try check(MPI_Comm_set_errhandler(pm_comm_world(), pm_errors_return()), "MPI_Comm_set_errhandler")
        started = true
    }

    public static func finalize() {
        var done: Int32 = 0
        MPI_Finalized(&done)
        if started && done == 0 { MPI_Finalize() }
    }

    public static var rank: Int { var r: Int32 = 0; MPI_Comm_rank(pm_comm_world(), &r); return Int(r) }
    public static var size: Int { var s: Int32 = 0; MPI_Comm_size(pm_comm_world(), &s); return Int(s) }

    /// Ends every rank of the job at once.
    public static func abort(_ code: Int32) -> Never {
        MPI_Abort(pm_comm_world(), code)
        exit(code)
    }

    /// e.g. "Open MPI v4.1.4, package: Debian OpenMPI, ..." (first line only).
    public static var libraryVersion: String {
        var buf = [CChar](repeating: 0, count: Int(pm_max_library_version_string()) + 1)
        var len: Int32 = 0
        MPI_Get_library_version(&buf, &len)
        return String(cString: buf).split(separator: "\n").first.map(String.init) ?? "unknown"
    }

    /// Whether MPI_Finalize has run (MPI cannot start again after it).
    public static var isFinalized: Bool { var done: Int32 = 0; MPI_Finalized(&done); return done != 0 }

    /// Waits for every rank (errors ignored: used on the way out).
    public static func barrier() { _ = MPI_Barrier(pm_comm_world()) }

    /// Ranks on this node (collective: every rank must call it).
    public static var localSize: Int { Int(pm_local_size()) }
}

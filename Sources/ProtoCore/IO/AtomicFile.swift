// Atomic file writes: a crash mid-write never leaves a half-written file under the final name.
import Foundation

public enum AtomicFile {
    /// Writes `data` to a temporary file beside `url`, flushes it, renames it over `url` and
    /// flushes the folder, so the new name survives a power loss. Errors name the file and
    /// say what to do (permissions, a folder in the way, a full disk).
    public static func write(_ data: Data, to url: URL) throws {
        let dir = url.deletingLastPathComponent()
        try makeFolder(dir)
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
            throw IOError(path: url.path, problem: "is a folder, where protomodel writes a file; move it away or choose another output")
        }
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw IOError(path: tmp.path, problem: "cannot create file: \(explain(errno))") }
        var failure: IOError?
        data.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = Foundation.write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 { if errno == EINTR { continue }; failure = IOError(path: url.path, problem: "write failed: \(explain(errno))"); return }
                off += n
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = IOError(path: url.path, problem: "fsync failed: \(explain(errno))") }
        close(fd)
        if failure == nil && rename(tmp.path, url.path) != 0 { failure = IOError(path: url.path, problem: "rename failed: \(explain(errno))") }
        if let failure {
            unlink(tmp.path)
            throw failure
        }
        syncFolder(dir)
    }

    /// Creates `dir` (and parents), naming the path and the fix when it cannot.
    public static func makeFolder(_ dir: URL) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw IOError(path: dir.path, problem: "exists and is a file, where a folder is needed; choose another output folder") }
            return
        }
        // mkdir -p by hand, so a failure reports the real errno; each new folder's entry is
        // flushed in its parent, so what is written into it later cannot outlive its name.
        var path = ""
        for part in dir.standardizedFileURL.path.split(separator: "/", omittingEmptySubsequences: true) {
            let parent = path.isEmpty ? "/" : path
            path += "/" + part
            if mkdir(path, 0o755) == 0 {
                syncFolder(URL(fileURLWithPath: parent))
            } else if errno != EEXIST {
                throw IOError(path: path, problem: "cannot create the folder: \(explain(errno))")
            }
        }
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw IOError(path: dir.path, problem: "cannot create the folder (a file is in the way?)")
        }
    }

    /// Flushes a folder's entries (new and renamed files) to disk; best effort.
    public static func syncFolder(_ dir: URL) {
        let fd = open(dir.path, O_RDONLY)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    /// A short reason and fix for an errno from file writes.
    public static func explain(_ code: Int32) -> String {
        let what = String(cString: strerror(code))
        switch code {
        case EACCES, EPERM, EROFS: return "\(what) — check the folder's permissions or choose a writable output folder"
        case ENOSPC, EDQUOT: return "\(what) — the disk is full; free space or choose an output folder on another disk"
        case EISDIR: return "\(what) — a folder is in the way"
        case ENOTDIR: return "\(what) — part of the path is a file, not a folder"
        default: return what
        }
    }

    /// Checks that files can be created in `dir` (making it if needed) and that `needBytes`
    /// fit in the free space, before any work: a run must not find out after training.
    public static func checkWritable(_ dir: URL, needBytes: Int = 0) throws {
        try makeFolder(dir)
        let probe = dir.appendingPathComponent(".protomodel-write-test-\(getpid())")
        let fd = open(probe.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw IOError(path: dir.path, problem: "cannot write here: \(explain(errno))") }
        close(fd); unlink(probe.path)
        if needBytes > 0, let attrs = try? FileManager.default.attributesOfFileSystem(forPath: dir.path),
           let free = (attrs[.systemFreeSize] as? NSNumber)?.int64Value, free < Int64(needBytes) {
            throw IOError(path: dir.path, problem: "\(free / 1_048_576) MiB free, the run needs about \(needBytes / 1_048_576) MiB for its outputs; free space or choose another folder")
        }
    }
}

/// A failed file operation, naming the file.
public struct IOError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var problem: String
    public init(path: String, problem: String) { self.path = path; self.problem = problem }
    public var description: String { "\(path): \(problem)" }
}

/// Reading files with errors that name the file and the fix (not Foundation's dumps).
public enum FileIO {
    public static func read(_ url: URL, mapped: Bool = false) throws -> Data {
        do { return try Data(contentsOf: url, options: mapped ? .alwaysMapped : []) } catch {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
                throw IOError(path: url.path, problem: "not found")
            }
            if isDir.boolValue { throw IOError(path: url.path, problem: "is a folder, where a file is expected") }
            if access(url.path, R_OK) != 0 { throw IOError(path: url.path, problem: "cannot read it: \(AtomicFile.explain(errno))") }
            throw IOError(path: url.path, problem: "cannot read it (\((error as NSError).localizedDescription))")
        }
    }
}

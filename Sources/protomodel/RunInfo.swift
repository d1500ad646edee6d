// What a run log's first line records so a result can be reproduced from the log alone.
import Foundation
import ProtoCore

enum RunInfo {
    static var swiftVersion: String {
        #if compiler(>=6.4)
        return "6.4 or later"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.0)
        return "6.0-6.1"
        #else
        return "5.x"
        #endif
    }

    static var host: String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        return String(cString: buf)
    }

    /// `git rev-parse HEAD` of the source tree the binary runs from, or "unknown".
    static var gitRevision: String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git", "-C", FileManager.default.currentDirectoryPath, "rev-parse", "--short=12", "HEAD"]
        let out = Pipe()
        p.standardOutput = out; p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return "unknown" }
        p.waitUntilExit()
        let s = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return p.terminationStatus == 0 && !s.isEmpty ? s : "unknown"
    }

    static func versions(mpi: String?) -> [String: String] {
        var v = ["swift": swiftVersion, "openblas": BLAS.configString]
        if let mpi { v["mpi"] = mpi }
        return v
    }
}

/// JSON Lines writer for `--log`; each record is one line, flushed as written.
final class JSONLWriter {
    private let handle: FileHandle
    let path: String

    /// Creates (or, with `append`, continues) the log at `path`.
    init(path: String, append: Bool = false) throws {
        self.path = path
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if !(append && FileManager.default.fileExists(atPath: path)) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw IOError(path: path, problem: "cannot create the log file (check the folder exists and is writable)")
            }
        }
        handle = try FileHandle(forWritingTo: url)
        if append { try handle.seekToEnd() }
    }

    func write(_ object: [String: Any]) throws {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        data.append(0x0A)
        try handle.write(contentsOf: data)
    }

    deinit { try? handle.close() }
}

/// A Codable value as a JSON object for the log.
func jsonObject<T: Encodable>(_ v: T) -> Any {
    (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(v))) ?? [:]
}

func formatDuration(_ s: Double) -> String {
    if !s.isFinite || s < 0 { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
}

/// Standard error, for progress that must not mix with results on standard output.
var stderr = FileHandle.standardError
extension FileHandle: @retroactive TextOutputStream {
    public func write(_ string: String) { write(string.data(using: .utf8)!) }
}

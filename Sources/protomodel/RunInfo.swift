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

    /// `git rev-parse HEAD` of the source tree the binary runs from, or "unknown" — read once,
    /// when the command starts (Entry.main), so a report written hours later names the tree
    /// the run started from, not commits made meanwhile.
    static let gitRevision: String = {
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
    }()

    static func versions(mpi: String?) -> [String: String] {
        var v = ["swift": swiftVersion, "openblas": BLAS.configString]
        if let mpi { v["mpi"] = mpi }
        return v
    }
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

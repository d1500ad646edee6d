// Peak memory of this process (Linux: VmHWM in /proc/self/status), for per-rank reports.
import Foundation

public enum ProcessMemory {
    /// Peak resident set size in bytes, or 0 where the kernel does not say.
    public static func peakResidentBytes() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }
}

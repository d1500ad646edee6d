// The emulator against real links (scripts/link_check.sh): the same run on shared memory with
// the emulator charging a link, and across namespaced hosts over TCP behind the kernel's
// shaper. This reads the runs' logs, pairs them, and writes the table and the plot.
import Foundation

public enum LinkValidationReport {
    /// One pairing: the emulated run's and the real run's median wall-clock step time.
    /// For `link == "off"` the "emulated" run is shared memory without a link and the real
    /// one unshaped TCP across the hosts (the emulator's implicit claim: TCP costs nothing).
    public struct Row: Equatable {
        public var hosts: Int
        public var codec: String
        public var link: String
        public var emulatedMs: Double
        public var realMs: Double
        public var ratio: Double { emulatedMs / realMs }
    }

    /// A run log's file name: `CODEC__Nh__emu|real__LINK.jsonl` (LINK as given to --link,
    /// with `/` written `-`).
    public static func fileName(codec: String, hosts: Int, real: Bool, link: String) -> String {
        "\(codec)__\(hosts)h__\(real ? "real" : "emu")__\(link.replacingOccurrences(of: "/", with: "-")).jsonl"
    }

    /// Median `step_time_s` (ms) of a JSON Lines run log's step records, leaving out the first
    /// `skip` steps (start-up); nil when fewer remain.
    public static func medianStepMs(_ log: Data, skip: Int) -> Double? {
        let text = String(decoding: log, as: UTF8.self)
        var t: [Double] = []
        for line in text.split(separator: "\n") where line.contains("\"type\":\"step\"") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = o["step_time_s"] as? Double else { continue }
            t.append(s)
        }
        guard t.count > skip else { return nil }
        let v = t.dropFirst(skip).sorted()
        let n = v.count
        return 1000 * (n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2)
    }

    /// Every emulated/real pair of logs in `dir`, in file-name order.
    public static func rows(in dir: URL, skip: Int) throws -> [Row] {
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".jsonl") }.sorted()
        var rows: [Row] = []
        for n in names {
            let parts = n.dropLast(6).components(separatedBy: "__")
            guard parts.count == 4, parts[2] == "emu", let h = Int(parts[1].dropLast()) else { continue }
            let realName = ([parts[0], parts[1], "real", parts[3]].joined(separator: "__")) + ".jsonl"
            guard names.contains(realName),
                  let e = medianStepMs(try Data(contentsOf: dir.appendingPathComponent(n)), skip: skip),
                  let r = medianStepMs(try Data(contentsOf: dir.appendingPathComponent(realName)), skip: skip) else { continue }
            rows.append(Row(hosts: h, codec: parts[0], link: parts[3].replacingOccurrences(of: "-", with: "/"), emulatedMs: e, realMs: r))
        }
        return rows
    }

    /// The Markdown table: per row the two medians, the ratio, and whether it meets its
    /// target: a shaped link's emulated step within ±`tolerance` of the real one; unshaped
    /// TCP no slower than `1 + unshapedTolerance` times shared memory (faster is fine).
    public static func markdown(_ rows: [Row], tolerance: Double = 0.15, unshapedTolerance: Double = 0.10) -> String {
        var s = "| hosts | codec | link | emulated (ms) | real (ms) | emulated / real | target met |\n|---|---|---|---|---|---|---|\n"
        for r in rows {
            let off = r.link == "off"
            let ok = off ? r.realMs <= (1 + unshapedTolerance) * r.emulatedMs : abs(r.ratio - 1) <= tolerance
            let target = off ? "TCP ≤ \(String(format: "%.2f", 1 + unshapedTolerance))× shared memory" : "±\(Int(tolerance * 100)) %"
            s += "| \(r.hosts) | \(r.codec) | \(off ? "unshaped (shared memory vs TCP)" : r.link) | "
                + String(format: "%.1f | %.1f | %.2f | ", r.emulatedMs, r.realMs, r.ratio)
                + "\(ok ? "yes" : "no") (\(target)) |\n"
        }
        return s
    }

    /// Emulated against real step time, one marker series per host count and codec, with the
    /// y = x line and the ±`tolerance` band.
    public static func plot(_ rows: [Row], tolerance: Double = 0.15, caption: String) -> SVGPlot {
        let keys = rows.map { "\($0.codec), \($0.hosts) hosts" }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        var series = keys.map { k in
            let rs = rows.filter { "\($0.codec), \($0.hosts) hosts" == k }
            return SVGPlot.Series(name: k, points: rs.map { ($0.realMs, $0.emulatedMs) }, line: false, markers: true,
                                  labels: rs.map { $0.link == "off" ? "unshaped" : $0.link })
        }
        let lo = (rows.map { min($0.realMs, $0.emulatedMs) }.min() ?? 1) * 0.8
        let hi = (rows.map { max($0.realMs, $0.emulatedMs) }.max() ?? 10) * 1.2
        series.append(SVGPlot.Series(name: "emulated = real", points: [(lo, lo), (hi, hi)], dashed: true, muted: true))
        series.append(SVGPlot.Series(name: "±\(Int(tolerance * 100)) %", points: [(lo, lo * (1 + tolerance)), (hi, hi * (1 + tolerance))], dashed: true, muted: true))
        series.append(SVGPlot.Series(name: "", points: [(lo, lo * (1 - tolerance)), (hi, hi * (1 - tolerance))], dashed: true, muted: true))
        var p = SVGPlot(title: "Emulated vs kernel-shaped link: median step time", xLabel: "real step (ms, TCP across namespaced hosts)",
                        yLabel: "emulated step (ms, shared memory + --link)", logX: true, series: series, caption: caption)
        p.logY = true
        return p
    }
}

// The compressed-vs-dense benchmark's results: one row per (codec, link), written as
// Markdown, CSV and JSON, plus the plots.
import Foundation
import ProtoCore
import ProtoPipeline

/// What one training run measured on one emulated link.
public struct BenchRun: Sendable {
    public var codec: String
    public var link: LinkModel
    public var clock: ClockMode
    public var bytesPerTokenForward: Double
    public var bytesPerTokenBackward: Double
    /// Dense fp32 bytes over this codec's bytes, forward.
    public var compression: Double
    /// Emulated step time of every step.
    public var stepSeconds: [Double]
    public var linkWaitShares: [Double]
    public var bubbleShares: [Double]
    /// Validation loss after `step` steps.
    public var validation: [(step: Int, loss: Double)]
    public var finalTrainLoss: Double
    /// Data-parallel gradient bytes per step between replicas (0 without replicas).
    public var replicaBytesPerStep: Double

    public init(codec: String, link: LinkModel, clock: ClockMode, bytesPerTokenForward: Double, bytesPerTokenBackward: Double,
                compression: Double, stepSeconds: [Double], linkWaitShares: [Double], bubbleShares: [Double],
                validation: [(step: Int, loss: Double)], finalTrainLoss: Double, replicaBytesPerStep: Double = 0) {
        self.replicaBytesPerStep = replicaBytesPerStep
        self.codec = codec; self.link = link; self.clock = clock
        self.bytesPerTokenForward = bytesPerTokenForward; self.bytesPerTokenBackward = bytesPerTokenBackward
        self.compression = compression; self.stepSeconds = stepSeconds; self.linkWaitShares = linkWaitShares
        self.bubbleShares = bubbleShares; self.validation = validation; self.finalTrainLoss = finalTrainLoss
    }

    /// Emulated wall-clock time when each validation point was taken.
    public var validationByTime: [(seconds: Double, loss: Double)] {
        var prefix = [0.0]
        for t in stepSeconds { prefix.append(prefix.last! + t) }
        return validation.map { (prefix[min($0.step, prefix.count - 1)], $0.loss) }
    }
}

/// One line of the results table.
public struct BenchRow: Sendable {
    public var run: BenchRun
    public var steady: SteadyState
    public var tokensPerSecond: Double
    public var linkWaitShare: Double
    public var bubbleShare: Double
    public var finalValidation: Double?
    public var stepsToTarget: Int?
    /// The speedrun score T = steps to the target validation loss × steady step time.
    public var score: Double?
    /// T of dense on the same link / this T (above 1: faster to the target than dense).
    public var scoreVsDense: Double?
}

public enum BenchReport {
    /// The default target: the best validation loss reached by the worst of the codecs that
    /// train properly (best loss within `slack` of the best codec's), so every one of those
    /// reaches it; a codec that diverges or stalls far above (e.g. aggressive top-k) shows
    /// "not reached" instead of dragging the target up.
    public static func defaultTarget(_ runs: [BenchRun], slack: Double = 0.2) -> Double? {
        let best = runs.compactMap { $0.validation.map(\.loss).min() }
        guard let overall = best.min() else { return nil }
        return best.filter { $0 <= overall * (1 + slack) }.max()
    }

    public static func rows(_ runs: [BenchRun], tokensPerStep: Int, target: Double?, window: Int, tolerance: Double) -> [BenchRow] {
        var rows = runs.map { r in
            let st = SteadyState.detect(r.stepSeconds, window: window, tolerance: tolerance)
            let from = min(st.fromStep, max(0, r.stepSeconds.count - 1))
            func mean(_ a: [Double]) -> Double { a.isEmpty ? 0 : a[from...].reduce(0, +) / Double(a.count - from) }
            let steps = target.flatMap { t in r.validation.first { $0.loss <= t }?.step }
            return BenchRow(run: r, steady: st, tokensPerSecond: Double(tokensPerStep) / max(st.seconds, 1e-12),
                            linkWaitShare: mean(r.linkWaitShares), bubbleShare: mean(r.bubbleShares),
                            finalValidation: r.validation.last?.loss, stepsToTarget: steps,
                            score: steps.map { Double($0) * st.seconds })
        }
        for i in rows.indices {
            if let dense = rows.first(where: { $0.run.codec == "dense" && $0.run.link == rows[i].run.link })?.score, let t = rows[i].score {
                rows[i].scoreVsDense = dense / t
            }
        }
        return rows
    }

    static let columns = ["codec", "link", "bytes/token fwd", "bytes/token bwd", "compression", "steady step (s)",
                          "tokens/s", "link wait", "bubble", "final val loss", "steps to target", "T (s)", "T vs dense"]

    static func cells(_ r: BenchRow) -> [String] {
        [r.run.codec, r.run.link.name,
         String(format: "%.1f", r.run.bytesPerTokenForward), String(format: "%.1f", r.run.bytesPerTokenBackward),
         String(format: "%.1f×", r.run.compression),
         String(format: "%.4f", r.steady.seconds) + (r.steady.reached ? "" : "*"),
         String(format: "%.0f", r.tokensPerSecond),
         String(format: "%.0f%%", r.linkWaitShare * 100), String(format: "%.0f%%", r.bubbleShare * 100),
         r.finalValidation.map { String(format: "%.4f", $0) } ?? "–",
         r.stepsToTarget.map(String.init) ?? "not reached",
         r.score.map { String(format: "%.1f", $0) } ?? "–",
         r.scoreVsDense.map { String(format: "%.2f×", $0) } ?? "–"]
    }

    public static func markdown(_ rows: [BenchRow], notes: [String]) -> String {
        var s = notes.map { "- \($0)\n" }.joined() + "\n"
        let dp = rows.contains { $0.run.replicaBytesPerStep > 0 }
        let cols = columns + (dp ? ["replica MB/step"] : [])
        s += "| " + cols.joined(separator: " | ") + " |\n"
        s += "|" + cols.map { _ in "---" }.joined(separator: "|") + "|\n"
        for r in rows { s += "| " + (cells(r) + (dp ? [String(format: "%.2f", r.run.replicaBytesPerStep / 1e6)] : [])).joined(separator: " | ") + " |\n" }
        if rows.contains(where: { !$0.steady.reached }) {
            s += "\n\\* no three consecutive 10-step windows agreed within the tolerance; the mean of the last half is shown.\n"
        }
        return s
    }

    public static func csv(_ rows: [BenchRow]) -> String {
        let head = ["codec", "link", "bandwidth_bit_s", "latency_s", "clock", "bytes_per_token_fwd", "bytes_per_token_bwd",
                    "compression", "steady_step_s", "steady_reached", "steady_from_step", "tokens_per_s", "link_wait_share",
                    "bubble_share", "final_val_loss", "steps_to_target", "score_T_s", "score_vs_dense", "replica_bytes_per_step"]
        var s = head.joined(separator: ",") + "\n"
        for r in rows {
            let f: [String] = [
                r.run.codec, r.run.link.name, r.run.link.bitsPerSecond.map { String($0) } ?? "", String(r.run.link.latency),
                r.run.clock.rawValue, String(r.run.bytesPerTokenForward), String(r.run.bytesPerTokenBackward),
                String(r.run.compression), String(r.steady.seconds), String(r.steady.reached), String(r.steady.fromStep),
                String(r.tokensPerSecond), String(r.linkWaitShare), String(r.bubbleShare),
                r.finalValidation.map { String($0) } ?? "", r.stepsToTarget.map(String.init) ?? "", r.score.map { String($0) } ?? "",
                r.scoreVsDense.map { String($0) } ?? "", String(r.run.replicaBytesPerStep),
            ]
            s += f.map { $0.contains(",") || $0.contains("\"") ? "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : $0 }
                .joined(separator: ",") + "\n"
        }
        return s
    }

    public static func json(_ rows: [BenchRow], meta: [String: Any]) throws -> Data {
        let list: [[String: Any]] = rows.map { r in
            var o: [String: Any] = [
                "codec": r.run.codec, "link": r.run.link.name, "latency_s": r.run.link.latency, "clock": r.run.clock.rawValue,
                "bytes_per_token_fwd": r.run.bytesPerTokenForward, "bytes_per_token_bwd": r.run.bytesPerTokenBackward,
                "compression": r.run.compression, "steady_step_s": r.steady.seconds, "steady_reached": r.steady.reached,
                "steady_from_step": r.steady.fromStep, "tokens_per_s": r.tokensPerSecond,
                "link_wait_share": r.linkWaitShare, "bubble_share": r.bubbleShare,
                "step_times_s": r.run.stepSeconds,
                "validation": r.run.validation.map { ["step": $0.step, "loss": $0.loss] },
            ]
            if let b = r.run.link.bitsPerSecond { o["bandwidth_bit_s"] = b }
            if let v = r.finalValidation { o["final_val_loss"] = v }
            if let s = r.stepsToTarget { o["steps_to_target"] = s }
            if let t = r.score { o["score_T_s"] = t }
            return o
        }
        var all = meta
        all["results"] = list
        return try JSONSerialization.data(withJSONObject: all, options: [.prettyPrinted, .sortedKeys])
    }

    /// The runs a `json` file holds, for drawing its plots again without training: each
    /// run's step times and validation as measured (link-wait and bubble shares as their
    /// step means), the target loss, and the plots' caption when the file recorded one.
    /// Throws `ConfigError` naming what is missing.
    public static func runs(fromJSON data: Data) throws -> (runs: [BenchRun], target: Double?, caption: String?) {
        guard let all = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let list = all["results"] as? [[String: Any]] else {
            throw ConfigError.problem("not a protomodel bench results.json (no \"results\" list)")
        }
        let runs = try list.enumerated().map { i, o -> BenchRun in
            func bad(_ what: String) -> ConfigError { .problem("results.json entry \(i + 1): \(what) is missing or not a number") }
            guard let codec = o["codec"] as? String, let linkName = o["link"] as? String else { throw bad("codec or link") }
            guard let times = o["step_times_s"] as? [Double], !times.isEmpty else { throw bad("step_times_s") }
            guard let fwd = o["bytes_per_token_fwd"] as? Double, let bwd = o["bytes_per_token_bwd"] as? Double,
                  let compression = o["compression"] as? Double else { throw bad("bytes_per_token_fwd/bwd or compression") }
            let vals = (o["validation"] as? [[String: Any]] ?? []).compactMap { v -> (step: Int, loss: Double)? in
                guard let s = v["step"] as? Int, let l = v["loss"] as? Double else { return nil }
                return (s, l)
            }
            let link = try LinkModel.parse(linkName)
            let clock = ClockMode(rawValue: o["clock"] as? String ?? "virtual") ?? .virtual
            return BenchRun(codec: codec, link: link, clock: clock, bytesPerTokenForward: fwd, bytesPerTokenBackward: bwd,
                            compression: compression, stepSeconds: times,
                            linkWaitShares: Array(repeating: o["link_wait_share"] as? Double ?? 0, count: times.count),
                            bubbleShares: Array(repeating: o["bubble_share"] as? Double ?? 0, count: times.count),
                            validation: vals, finalTrainLoss: .nan)
        }
        // Files written before the caption was recorded: their notes say the same things.
        let notes = (all["notes"] as? [String] ?? []).filter { $0.hasPrefix("model:") || $0.hasPrefix("run:") || $0.hasPrefix("clock:") }
        return (runs, all["target_loss"] as? Double, all["caption"] as? String ?? (notes.isEmpty ? nil : notes.joined(separator: "; ")))
    }

    /// Writes every plot of `runs` into `dir` (step time vs bandwidth per latency, loss vs
    /// time per link); returns the file names.
    public static func writePlots(_ runs: [BenchRun], rows: [BenchRow], target: Double?, caption: String?, to dir: URL) throws -> [String] {
        var plots: [String] = []
        for lat in latencies(rows) {
            let name = String(format: "steptime_vs_bandwidth_%gms.svg", lat * 1000)
            try AtomicFile.write(Data(stepTimeVsBandwidth(rows, latency: lat, caption: caption).render().utf8), to: dir.appendingPathComponent(name))
            plots.append(name)
        }
        var seen = Set<String>()
        for l in runs.map(\.link.name) where seen.insert(l).inserted {
            let name = "loss_vs_time_" + l.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined() + ".svg"
            try AtomicFile.write(Data(lossVsTime(runs, link: l, target: target, caption: caption).render().utf8), to: dir.appendingPathComponent(name))
            plots.append(name)
        }
        return plots
    }

    /// Validation loss against emulated wall-clock time, one line per codec, on one link.
    public static func lossVsTime(_ runs: [BenchRun], link: String, target: Double?, caption: String? = nil) -> SVGPlot {
        let series = runs.filter { $0.link.name == link }.map { r in
            SVGPlot.Series(name: r.codec, points: r.validationByTime.map { (x: $0.seconds, y: $0.loss) })
        }
        var plot = SVGPlot(title: "Validation loss vs emulated time, link \(link)", xLabel: "emulated wall-clock time (s)",
                           yLabel: "validation loss", series: series, caption: caption)
        if let t = target { plot.hLines = [(t, String(format: "target %.3f", t))] }
        return plot
    }

    /// The distinct latencies of the bandwidth-limited links in `rows`, in order.
    public static func latencies(_ rows: [BenchRow]) -> [Double] {
        rows.filter { $0.run.link.bitsPerSecond != nil }.map(\.run.link.latency).reduce(into: [Double]()) { if !$0.contains($1) { $0.append($1) } }
    }

    /// Steady step time against bandwidth (log axis) at one latency: a line per codec over
    /// the links with that latency, and the step with no link as one dashed reference.
    public static func stepTimeVsBandwidth(_ rows: [BenchRow], latency: Double, caption: String? = nil) -> SVGPlot {
        let codecs = rows.map(\.run.codec).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        var series: [SVGPlot.Series] = []
        for c in codecs {
            let pts = rows.filter { $0.run.codec == c && $0.run.link.latency == latency }
                .compactMap { r in r.run.link.bitsPerSecond.map { (x: $0, y: r.steady.seconds) } }.sorted { $0.x < $1.x }
            if !pts.isEmpty { series.append(SVGPlot.Series(name: c, points: pts)) }
        }
        let ms = latency * 1000
        var plot = SVGPlot(title: "Steady step time vs bandwidth, latency \(ms == ms.rounded() ? String(Int(ms)) : String(format: "%.2g", ms)) ms",
                           xLabel: "link bandwidth (bit/s, log scale)", yLabel: "steady step time (s)", logX: true, series: series, caption: caption)
        if let off = rows.first(where: { $0.run.link.isOff }) {
            plot.hLines = [(off.steady.seconds, "\(off.run.codec), no link: \(String(format: "%.3g", off.steady.seconds)) s")]
        }
        // Step times over more than 1.5 decades (fast links beside slow ones) on a log axis,
        // so the fast end is not flattened onto zero.
        let ys = series.flatMap(\.points).map(\.y) + plot.hLines.map(\.y)
        if let lo = ys.min(), let hi = ys.max(), lo > 0, hi / lo > 30 {
            plot.logY = true
            plot.yLabel = "steady step time (s, log scale)"
        }
        return plot
    }


}

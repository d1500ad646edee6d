// Tables and plots of the convergence benchmark: per variant the boundary bytes, the
// compression against dense fp32 and bf16, validation loss, the gap to dense, and how many
// steps dense needed to reach the variant's final loss; the bytes-versus-loss Pareto front.
import Foundation
import ProtoPipeline

public struct ConvergenceRow: Sendable {
    public var result: ConvergenceResult
    /// Total bytes per token per boundary (both directions + sync), and its ratio to dense
    /// fp32 and to dense bf16 on the same messages.
    public var totalBytes: Double
    public var compressionFP32: Double
    public var compressionBF16: Double
    public var finalLoss: Double
    /// (loss − dense loss) / dense loss, in percent.
    public var gapPercent: Double?
    /// Steps the dense run needed to reach this variant's final loss (interpolated between
    /// validation points); nil when dense never got there.
    public var denseStepsToReach: Double?
    /// This variant's steps / denseStepsToReach: how many times more steps it needs.
    public var stepsRatio: Double?
    public var onFront: Bool
}

public enum ConvergenceReport {
    /// Rows in input order. `dense` is the label of the reference run (nil: none in the list);
    /// `fp32Bytes`/`bf16Bytes` are the per-token bytes each way of a dense fp32/bf16 message.
    public static func rows(_ results: [ConvergenceResult], dense: String?, fp32Bytes: Double, bf16Bytes: Double) -> [ConvergenceRow] {
        let ref = results.first { $0.label == dense }
        let pts = results.map { ($0.totalBytesPerToken, $0.finalValidation ?? .infinity) }
        return results.enumerated().map { i, r in
            let loss = r.finalValidation ?? .nan
            var row = ConvergenceRow(result: r, totalBytes: r.totalBytesPerToken,
                                     compressionFP32: 2 * fp32Bytes / r.totalBytesPerToken,
                                     compressionBF16: 2 * bf16Bytes / r.totalBytesPerToken,
                                     finalLoss: loss, gapPercent: nil, denseStepsToReach: nil, stepsRatio: nil,
                                     onFront: paretoFront(pts).contains(i))
            if let ref, let dl = ref.finalValidation {
                row.gapPercent = (loss - dl) / dl * 100
                row.denseStepsToReach = stepsToReach(loss, curve: ref.validation)
                row.stepsRatio = row.denseStepsToReach.map { Double(r.steps) / $0 }
            }
            return row
        }
    }

    /// First (interpolated) step at which `curve` reaches `loss`; nil if it never does.
    public static func stepsToReach(_ loss: Double, curve: [ValidationPoint]) -> Double? {
        guard loss.isFinite else { return nil }
        var prev: ValidationPoint?
        for p in curve {
            if p.loss <= loss {
                guard let q = prev, q.loss > p.loss else { return Double(p.step) }
                return Double(q.step) + (q.loss - loss) / (q.loss - p.loss) * Double(p.step - q.step)
            }
            prev = p
        }
        return nil
    }

    /// Indices of the points no other point beats on both bytes and loss (lower is better).
    public static func paretoFront(_ pts: [(bytes: Double, loss: Double)]) -> Set<Int> {
        var out = Set<Int>()
        for (i, p) in pts.enumerated() where p.loss.isFinite {
            let dominated = pts.enumerated().contains { j, q in
                j != i && q.bytes <= p.bytes && q.loss <= p.loss && (q.bytes < p.bytes || q.loss < p.loss)
            }
            if !dominated { out.insert(i) }
        }
        return out
    }

    static func fmt(_ v: Double?, _ f: String) -> String { v.map { $0.isFinite ? String(format: f, $0) : "–" } ?? "–" }

    static let header = ["variant", "bytes/token fwd", "bytes/token bwd", "sync bytes/token", "× vs fp32", "× vs bf16",
                         "val loss", "gap to dense", "dense steps to this loss", "steps ratio", "params", "wire error fwd/bwd", "front"]

    static func cells(_ r: ConvergenceRow) -> [String] {
        let x = r.result
        return [x.label, fmt(x.bytesPerTokenForward, "%.1f"), fmt(x.bytesPerTokenBackward, "%.1f"), fmt(x.syncBytesPerToken, "%.2f"),
                fmt(r.compressionFP32, "%.1f×"), fmt(r.compressionBF16, "%.1f×"), fmt(r.finalLoss, "%.4f"),
                r.gapPercent.map { String(format: "%+.1f%%", $0) } ?? "–",
                r.denseStepsToReach.map { String(format: "%.0f", $0) } ?? (r.gapPercent.map { $0 < 0 ? "> \(x.steps)" : "–" } ?? "–"),
                fmt(r.stepsRatio, "%.2f"), "\(x.parameters)",
                String(format: "%.1e / %.1e", x.wireErrorForward, x.wireErrorBackward), r.onFront ? "★" : ""]
    }

    public static func markdown(_ rows: [ConvergenceRow], notes: [String]) -> String {
        var s = notes.map { "- \($0)\n" }.joined()
        if !notes.isEmpty { s += "\n" }
        s += "| " + header.joined(separator: " | ") + " |\n"
        s += "|" + header.map { _ in "---" }.joined(separator: "|") + "|\n"
        for r in rows { s += "| " + cells(r).joined(separator: " | ") + " |\n" }
        if let evals = rows.first?.result.validation, evals.count > 1 {
            s += "\nValidation loss by step:\n\n| variant | " + evals.map { "\($0.step)" }.joined(separator: " | ") + " |\n"
            s += "|---|" + evals.map { _ in "---" }.joined(separator: "|") + "|\n"
            for r in rows { s += "| \(r.result.label) | " + r.result.validation.map { String(format: "%.4f", $0.loss) }.joined(separator: " | ") + " |\n" }
        }
        return s
    }

    public static func csv(_ rows: [ConvergenceRow]) -> String {
        var s = "variant,codec,bytes_per_token_fwd,bytes_per_token_bwd,sync_bytes_per_token,compression_vs_fp32,compression_vs_bf16,val_loss,gap_percent,dense_steps_to_loss,steps_ratio,parameters,wire_error_fwd,wire_error_bwd,pareto_front\n"
        for r in rows {
            let x = r.result
            let f: [String] = ["\"\(x.label)\"", x.codec, "\(x.bytesPerTokenForward)", "\(x.bytesPerTokenBackward)", "\(x.syncBytesPerToken)",
                               "\(r.compressionFP32)", "\(r.compressionBF16)", "\(r.finalLoss)", r.gapPercent.map { "\($0)" } ?? "",
                               r.denseStepsToReach.map { "\($0)" } ?? "", r.stepsRatio.map { "\($0)" } ?? "", "\(x.parameters)",
                               "\(x.wireErrorForward)", "\(x.wireErrorBackward)", r.onFront ? "1" : "0"]
            s += f.joined(separator: ",") + "\n"
        }
        return s
    }

    public static func json(_ rows: [ConvergenceRow], notes: [String]) throws -> Data {
        struct Row: Encodable {
            var result: ConvergenceResult
            var compression_vs_fp32: Double, compression_vs_bf16: Double, gap_percent: Double?
            var dense_steps_to_loss: Double?, steps_ratio: Double?, pareto_front: Bool
        }
        struct Doc: Encodable { var notes: [String]; var rows: [Row] }
        let doc = Doc(notes: notes, rows: rows.map {
            Row(result: $0.result, compression_vs_fp32: $0.compressionFP32, compression_vs_bf16: $0.compressionBF16,
                gap_percent: $0.gapPercent, dense_steps_to_loss: $0.denseStepsToReach, steps_ratio: $0.stepsRatio,
                pareto_front: $0.onFront)
        })
        return try ConvergenceResult.jsonEncoder().encode(doc)
    }

    /// Bytes per token (log axis) against final validation loss: one marker per variant, the
    /// Pareto front drawn through the variants no other beats, dense as a reference line.
    /// The family a variant belongs to, for the Pareto plot's colours.
    public static func family(_ r: ConvergenceResult) -> String {
        let levers = r.label.contains("E_fixed") || r.label.contains("+norm") || r.label.contains("MLP") || r.label.contains("+layer emb")
        if r.codec.hasPrefix("projector") || r.codec.contains("adaptive") { return "adaptive U / learned projectors" }
        if r.codec.hasPrefix("subspace") {
            if r.label.contains("+layer emb") { return "subspace + levers + layer embeddings" }
            return levers ? "subspace + levers (E_fixed σ, norm, MLP)" : "fixed subspace (the paper's)"
        }
        return levers ? "dense + levers" : "dense and quantized dense"
    }

    /// A point label short enough to sit beside its marker: "k16 int8 σ1 +norm".
    public static func shortLabel(_ label: String) -> String {
        var s = label
        for (a, b) in [("subspace k=", "k"), ("projector k=", "proj k"), (" E_fixed σ=", " σ"), (" adaptive", " adapt"), (" ulr ", " ulr"), (" MLP ", " mlp"), (" +layer emb", " +lemb")] {
            s = s.replacingOccurrences(of: a, with: b)
        }
        return s
    }

    /// Bytes per token (log) against final validation loss: one colour per family, each point
    /// labelled, the Pareto front dashed, dense and dense + 2 % / + 5 % as reference lines.
    /// Points worse than dense + 20 % are left off and named in the caption.
    public static func paretoPlot(_ allRows: [ConvergenceRow], dense: String?, caption: String) -> SVGPlot {
        // A run that sent nothing (one stage) has no place on a log axis; named in the caption.
        let silent = allRows.filter { !($0.totalBytes > 0 && $0.totalBytes.isFinite) }
        let rows = allRows.filter { $0.totalBytes > 0 && $0.totalBytes.isFinite }
        let front = rows.filter(\.onFront).sorted { $0.totalBytes < $1.totalBytes }
        var series = [SVGPlot.Series(name: "Pareto front", points: front.map { ($0.totalBytes, $0.finalLoss) }, dashed: true, markers: false, muted: true)]
        var families: [String] = []
        for r in rows where !families.contains(family(r.result)) { families.append(family(r.result)) }
        for f in families {
            let rs = rows.filter { family($0.result) == f }
            series.append(SVGPlot.Series(name: f, points: rs.map { ($0.totalBytes, $0.finalLoss) }, line: false,
                                         labels: rs.map { shortLabel($0.result.label) }))
        }
        let ref = allRows.first { $0.result.label == dense }
        var cap = caption
        if !silent.isEmpty { cap += "; no boundary bytes (one stage), not plotted: " + silent.map { String(format: "%@ %.3f", $0.result.label, $0.finalLoss) }.joined(separator: ", ") }
        if let d = ref {
            let off = rows.filter { $0.finalLoss > d.finalLoss * 1.2 }
            if !off.isEmpty { cap += "; off the plot: " + off.map { String(format: "%@ %.3f", $0.result.label, $0.finalLoss) }.joined(separator: ", ") }
        }
        var plot = SVGPlot(title: "Boundary bytes vs validation loss at equal tokens",
                           xLabel: "bytes per token per boundary (forward + backward + sync, log scale)",
                           yLabel: "validation loss", logX: true, series: series, caption: cap)
        if let d = ref {
            plot.hLines = [(d.finalLoss, String(format: "dense %.3f", d.finalLoss)), (d.finalLoss * 1.02, "dense + 2%"), (d.finalLoss * 1.05, "dense + 5%")]
            plot.yMax = d.finalLoss * 1.2
        }
        plot.height = 560
        return plot
    }

    /// Validation loss against steps (= tokens) for the variants worth reading side by side:
    /// dense, every variant on the Pareto front, and the best of each other family (all of
    /// them are in the tables).
    public static func curvesPlot(_ rows: [ConvergenceRow], dense: String? = nil, caption: String) -> SVGPlot {
        var chosen = rows.filter { $0.result.label == dense || $0.onFront }
        for f in rows.map({ family($0.result) }) {
            if let best = rows.filter({ family($0.result) == f }).min(by: { $0.finalLoss < $1.finalLoss }),
               !chosen.contains(where: { $0.result.label == best.result.label }) { chosen.append(best) }
        }
        let order = rows.map(\.result.label)
        chosen.sort { order.firstIndex(of: $0.result.label)! < order.firstIndex(of: $1.result.label)! }
        // The axis stops at dense's loss a quarter into the run, so the end, where the
        // variants differ, is not squashed by the first evaluations.
        let top = rows.first { $0.result.label == dense }.flatMap { d in
            d.result.validation.first { $0.step * 4 >= d.result.steps }?.loss }
        var plot = SVGPlot(title: "Validation loss during training (dense, the Pareto front, the best of each family)",
                           xLabel: "optimizer steps (equal tokens per step)", yLabel: "validation loss",
                           series: chosen.map { SVGPlot.Series(name: $0.result.label, points: $0.result.validation.map { (Double($0.step), $0.loss) }) },
                           caption: caption + (top.map { String(format: "; losses above %.2f (early steps) are left off", $0) } ?? ""))
        plot.yMax = top
        return plot
    }
}

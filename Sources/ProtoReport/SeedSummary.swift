// The convergence benchmark over several initialisations: one seed moves a final loss by
// about 1 % on the default task, as much as many levers under test, so a gap is reported as
// the mean of per-seed gaps (each variant against dense trained from the same seed) with
// their spread.
import Foundation
import ProtoPipeline

/// One variant's figures across seeds.
public struct SeedSummaryRow: Sendable, Equatable {
    public var label: String
    public var seeds: [UInt64]
    /// Final validation loss per seed, in `seeds` order.
    public var losses: [Double]
    /// (loss − dense loss) / dense loss in percent per seed, dense trained from the same seed.
    public var gapsPercent: [Double]
    public var totalBytes: Double
    public var compressionFP32: Double
    public var meanLoss: Double { Self.mean(losses) }
    public var meanGapPercent: Double { Self.mean(gapsPercent) }
    /// Sample standard deviation of the per-seed gaps (0 with one seed).
    public var gapSpreadPercent: Double { Self.sd(gapsPercent) }

    static func mean(_ x: [Double]) -> Double { x.isEmpty ? .nan : x.reduce(0, +) / Double(x.count) }
    static func sd(_ x: [Double]) -> Double {
        guard x.count > 1 else { return 0 }
        let m = mean(x)
        return (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)).squareRoot()
    }
}

public enum SeedSummary {
    /// Rows per variant label in first-seen order, from each seed's report rows. A variant
    /// missing from a seed, or a seed without dense, is left out of that variant's figures.
    public static func rows(_ perSeed: [(seed: UInt64, rows: [ConvergenceRow])]) -> [SeedSummaryRow] {
        var order: [String] = []
        var byLabel: [String: SeedSummaryRow] = [:]
        for (seed, rows) in perSeed {
            for r in rows {
                let label = r.result.label
                if byLabel[label] == nil {
                    order.append(label)
                    byLabel[label] = SeedSummaryRow(label: label, seeds: [], losses: [], gapsPercent: [],
                                                    totalBytes: r.totalBytes, compressionFP32: r.compressionFP32)
                }
                guard let gap = r.gapPercent, r.finalLoss.isFinite else { continue }
                byLabel[label]!.seeds.append(seed)
                byLabel[label]!.losses.append(r.finalLoss)
                byLabel[label]!.gapsPercent.append(gap)
            }
        }
        return order.map { byLabel[$0]! }
    }

    public static func markdown(_ rows: [SeedSummaryRow], notes: [String]) -> String {
        var s = notes.map { "- \($0)\n" }.joined()
        if !notes.isEmpty { s += "\n" }
        s += "| variant | bytes/token (fwd+bwd+sync) | × vs fp32 | seeds | mean val loss | gap to dense, mean ± sd | gap per seed |\n"
        s += "|---|---|---|---|---|---|---|\n"
        for r in rows {
            let per = zip(r.seeds, r.gapsPercent).map { String(format: "%llu: %+.1f%%", $0, $1) }.joined(separator: ", ")
            s += "| \(r.label) | " + String(format: "%.1f", r.totalBytes) + " | " + (r.compressionFP32.isFinite ? String(format: "%.1f×", r.compressionFP32) : "–")
                + " | \(r.seeds.count) | " + String(format: "%.4f", r.meanLoss) + " | "
                + String(format: "%+.1f %% ± %.1f", r.meanGapPercent, r.gapSpreadPercent) + " | \(per) |\n"
        }
        return s
    }

    public static func json(_ rows: [SeedSummaryRow], notes: [String]) throws -> Data {
        struct Row: Encodable {
            var label: String, seeds: [UInt64], losses: [Double], gaps_percent: [Double]
            var total_bytes_per_token: Double, compression_vs_fp32: Double
            var mean_loss: Double, mean_gap_percent: Double, gap_sd_percent: Double
        }
        struct Doc: Encodable { var notes: [String]; var rows: [Row] }
        let doc = Doc(notes: notes, rows: rows.map {
            Row(label: $0.label, seeds: $0.seeds, losses: $0.losses, gaps_percent: $0.gapsPercent,
                total_bytes_per_token: $0.totalBytes, compression_vs_fp32: $0.compressionFP32,
                mean_loss: $0.meanLoss, mean_gap_percent: $0.meanGapPercent, gap_sd_percent: $0.gapSpreadPercent)
        })
        return try ConvergenceResult.jsonEncoder().encode(doc)
    }
}

// `protomodel compare`: runs side by side from their JSON Lines logs — bytes per token,
// emulated step time, validation loss, and the emulated time each needed to reach the loss
// the worst of them reached — with a plot of validation loss against emulated time.
import ArgumentParser
import Foundation
import ProtoReport
import ProtoCore
import ProtoTrain

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare runs from their --log files: bytes/token, emulated step time, validation loss, time to the same loss.")

    @Argument(help: "Run logs (train --log FILE), two or more.") var logs: [String]
    @Option(name: .customLong("plot-out"), help: "Folder for loss_vs_time.svg (default: beside the first log).") var plotOut: String?

    struct Run {
        var path: String
        var codec: String
        var link: String
        var bytesPerToken: Double
        var stepSeconds: Double
        var validation: [(time: Double, step: Int, loss: Double)]
        var finalLoss: Double? { validation.last?.loss }
    }

    func read(_ path: String) throws -> Run {
        let text = String(decoding: try FileIO.read(URL(fileURLWithPath: path)), as: UTF8.self)
        var codec = "?", link = "?", bytes: [Double] = [], times: [Double] = []
        var vals: [(Double, Int, Double)] = []
        let dec = JSONDecoder()
        for line in text.split(separator: "\n") {
            let data = Data(line.utf8)
            guard let head = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let type = head["type"] as? String else { continue }
            switch type {
            case "config", "resume":
                codec = head["codec_detail"] as? String ?? codec; link = head["link"] as? String ?? link
            case "step":
                guard let r = try? dec.decode(StepRecord.self, from: data) else { continue }
                bytes.append(r.bytesPerTokenFwd + r.bytesPerTokenBwd); times.append(r.stepTimeEmulatedS)
                if let v = r.valLoss { vals.append((r.emulatedTimeS, r.step, Double(v))) }
            default: continue
            }
        }
        guard !times.isEmpty else { throw CLIError("\(path): no step records — not a `protomodel train --log` file") }
        let tail = times.suffix(max(1, times.count / 2)).sorted()
        return Run(path: path, codec: codec, link: link, bytesPerToken: bytes.last ?? 0, stepSeconds: tail[tail.count / 2], validation: vals)
    }

    /// Emulated time at which `loss` was first reached (interpolated between validation points).
    static func timeTo(_ loss: Double, _ v: [(time: Double, step: Int, loss: Double)]) -> Double? {
        var prev: (time: Double, step: Int, loss: Double)?
        for p in v {
            if p.loss <= loss {
                guard let q = prev, q.loss > p.loss else { return p.time }
                return q.time + (q.loss - loss) / (q.loss - p.loss) * (p.time - q.time)
            }
            prev = p
        }
        return nil
    }

    func run() throws {
        guard logs.count >= 2 else { throw ValidationError("give two or more run logs to compare") }
        let runs = try logs.map(read)
        let target = runs.compactMap(\.finalLoss).max()
        print("| run | codec | link | bytes/token (fwd+bwd) | emulated step | val loss | emulated time to val \(target.map { String(format: "%.3f", $0) } ?? "–") |")
        print("|---|---|---|---|---|---|---|")
        for r in runs {
            let t = target.flatMap { Self.timeTo($0, r.validation) }
            print("| \(r.path) | \(r.codec) | \(r.link) | \(String(format: "%.0f", r.bytesPerToken)) | \(String(format: "%.0f ms", r.stepSeconds * 1000)) | "
                  + "\(r.finalLoss.map { String(format: "%.4f", $0) } ?? "–") | \(t.map { String(format: "%.0f s", $0) } ?? "not reached") |")
        }
        let plot = SVGPlot(title: "Validation loss vs emulated time", xLabel: "emulated time (s)", yLabel: "validation loss",
                           series: runs.map { r in SVGPlot.Series(name: "\(r.codec) over \(r.link)", points: r.validation.map { ($0.time, $0.loss) }) },
                           caption: "from " + logs.joined(separator: ", "))
        let dir = URL(fileURLWithPath: plotOut ?? (logs[0] as NSString).deletingLastPathComponent)
        let file = dir.appendingPathComponent("loss_vs_time.svg")
        try AtomicFile.write(Data(plot.render().utf8), to: file)
        print("plot        \(file.path)")
    }
}

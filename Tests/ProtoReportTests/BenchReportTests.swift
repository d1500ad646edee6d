// The benchmark table's arithmetic (steady state, steps to target, T) and its outputs.
import XCTest
import ProtoPipeline
@testable import ProtoReport

final class BenchReportTests: XCTestCase {
    func run(_ codec: String, _ link: String, step: Double, vals: [(Int, Double)]) throws -> BenchRun {
        let times = Array(repeating: step * 2, count: 10) + Array(repeating: step, count: 40)  // 10 warm-up steps
        return BenchRun(codec: codec, link: try LinkModel.parse(link), clock: .virtual, bytesPerTokenForward: codec == "dense" ? 528 : 66,
                        bytesPerTokenBackward: codec == "dense" ? 528 : 64, compression: codec == "dense" ? 1 : 8,
                        stepSeconds: times, linkWaitShares: Array(repeating: 0.25, count: 50), bubbleShares: Array(repeating: 0.5, count: 50),
                        validation: vals.map { (step: $0.0, loss: $0.1) }, finalTrainLoss: 3)
    }

    func testRowsScoreAndTarget() throws {
        let dense = try run("dense", "200mbit:50ms", step: 2.0, vals: [(10, 4.0), (20, 3.5), (30, 3.2), (50, 3.0)])
        let sub = try run("subspace k=16", "200mbit:50ms", step: 0.5, vals: [(10, 4.2), (20, 3.8), (30, 3.4), (50, 3.3)])
        XCTAssertEqual(BenchReport.defaultTarget([dense, sub]), 3.3, "the best loss of the worst codec")
        let broken = try run("topk 0.1", "200mbit:50ms", step: 0.5, vals: [(10, 6.0), (50, 5.7)])
        XCTAssertEqual(BenchReport.defaultTarget([dense, sub, broken]), 3.3, "a codec far behind does not set the target")
        let rows = BenchReport.rows([dense, sub], tokensPerStep: 1000, target: 3.3, window: 10, tolerance: 0.01)
        XCTAssertEqual(rows[0].steady.seconds, 2.0, accuracy: 1e-12)
        XCTAssertEqual(rows[0].steady.fromStep, 10)
        XCTAssertEqual(rows[0].tokensPerSecond, 500, accuracy: 1e-9)
        XCTAssertEqual(rows[0].stepsToTarget, 30)
        XCTAssertEqual(rows[0].score!, 60, accuracy: 1e-9)
        XCTAssertEqual(rows[1].stepsToTarget, 50)
        XCTAssertEqual(rows[1].score!, 25, accuracy: 1e-9)
        XCTAssertEqual(rows[1].linkWaitShare, 0.25, accuracy: 1e-12)
        let never = BenchReport.rows([dense], tokensPerStep: 1000, target: 1.0, window: 10, tolerance: 0.01)
        XCTAssertNil(never[0].stepsToTarget); XCTAssertNil(never[0].score)
        // Emulated time of each validation point: warm-up steps count at their real cost.
        XCTAssertEqual(dense.validationByTime[0].seconds, 40, accuracy: 1e-9)
        XCTAssertEqual(dense.validationByTime[1].seconds, 60, accuracy: 1e-9)
    }

    func testOutputs() throws {
        let a = try run("dense", "off", step: 1, vals: [(10, 4), (50, 3)])
        let b = try run("dense", "80mbit", step: 3, vals: [(10, 4), (50, 3)])
        let c = try run("subspace k=16", "80mbit", step: 1.1, vals: [(10, 4.1), (50, 3.2)])
        let rows = BenchReport.rows([a, b, c], tokensPerStep: 1000, target: 3.2, window: 10, tolerance: 0.01)
        let md = BenchReport.markdown(rows, notes: ["note"])
        XCTAssertTrue(md.contains("| dense | 80mbit | 528.0 | 528.0 | 1.0× | 3.0000 |"), md)
        XCTAssertEqual(md.split(separator: "\n").filter { $0.hasPrefix("| ") }.count, 4, "header + 3 rows")
        let csv = BenchReport.csv(rows).split(separator: "\n")
        XCTAssertEqual(csv.count, 4)
        XCTAssertTrue(csv[2].hasPrefix("dense,80mbit,80000000.0,0.0,virtual,"), String(csv[2]))
        let json = try JSONSerialization.jsonObject(with: BenchReport.json(rows, meta: ["target_loss": 3.2])) as! [String: Any]
        XCTAssertEqual((json["results"] as! [[String: Any]]).count, 3)
        XCTAssertEqual(BenchReport.latencies(rows), [0])
        let svg = BenchReport.stepTimeVsBandwidth(rows, latency: 0, caption: "cap").render()
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertTrue(svg.contains("dense, no link"), "the unlimited link is one dashed reference")
        XCTAssertTrue(svg.contains(">cap<"), "the caption says what produced the figure")
        XCTAssertEqual(svg.components(separatedBy: "dense, no link").count - 1, 1, "drawn once")
        XCTAssertFalse(BenchReport.stepTimeVsBandwidth(rows, latency: 0, caption: "").logY, "3 s and 1 s: a linear axis")
        // Step times over more than 1.5 decades go on a log axis; no axis of times or losses
        // reaches below zero.
        let fast = try run("dense", "100gbit", step: 0.01, vals: [(10, 4), (50, 3)])
        let wide = BenchReport.rows([b, fast], tokensPerStep: 1000, target: 3.2, window: 10, tolerance: 0.01)
        let logPlot = BenchReport.stepTimeVsBandwidth(wide, latency: 0, caption: "")
        XCTAssertTrue(logPlot.logY)
        XCTAssertTrue(logPlot.yLabel.contains("log scale"))
        for svg in [BenchReport.stepTimeVsBandwidth(rows, latency: 0, caption: "").render(),
                    BenchReport.lossVsTime([a, b, c], link: "80mbit", target: 3.2).render()] {
            XCTAssertFalse(svg.contains("text-anchor=\"end\">-") || svg.contains("text-anchor=\"middle\">-"), "a negative tick on a time or loss axis")
        }
        // --replot: the runs read back from results.json draw the same plots.
        let back = try BenchReport.runs(fromJSON: BenchReport.json(rows, meta: ["target_loss": 3.2, "caption": "cap"]))
        XCTAssertEqual(back.runs.count, 3); XCTAssertEqual(back.target, 3.2); XCTAssertEqual(back.caption, "cap")
        let again = BenchReport.rows(back.runs, tokensPerStep: 1000, target: 3.2, window: 10, tolerance: 0.01)
        XCTAssertEqual(BenchReport.stepTimeVsBandwidth(again, latency: 0, caption: "cap").render(),
                       BenchReport.stepTimeVsBandwidth(rows, latency: 0, caption: "cap").render())
        XCTAssertEqual(BenchReport.lossVsTime(back.runs, link: "80mbit", target: 3.2).render(),
                       BenchReport.lossVsTime([a, b, c], link: "80mbit", target: 3.2).render())
        XCTAssertThrowsError(try BenchReport.runs(fromJSON: Data("{}".utf8)))
        let loss = BenchReport.lossVsTime([a, b, c], link: "80mbit", target: 3.2).render()
        XCTAssertTrue(loss.contains("target 3.200"))
        XCTAssertTrue(loss.hasSuffix("</svg>\n"))
    }
}

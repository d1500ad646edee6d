// The convergence table's arithmetic: steps dense needs to reach a loss, the Pareto front,
// compression against fp32 and bf16, and the gap to dense.
import XCTest
import ProtoPipeline
@testable import ProtoReport

final class ConvergenceReportTests: XCTestCase {
    func result(_ label: String, fwd: Double, bwd: Double, sync: Double = 0, vals: [(Int, Double)]) -> ConvergenceResult {
        ConvergenceResult(label: label, codec: label, fingerprint: "x", stages: 8, steps: vals.last!.0, tokensPerStep: 4096,
                          parameters: 1, bytesPerTokenForward: fwd, bytesPerTokenBackward: bwd, syncBytesPerToken: sync,
                          wireErrorForward: 0, wireErrorBackward: 0, validation: vals.map { ValidationPoint(step: $0.0, loss: $0.1) },
                          finalTrainLoss: 0, wallSeconds: 1)
    }

    func testStepsToReachInterpolates() {
        let curve = [(100, 4.0), (200, 3.0), (300, 2.5)].map { ValidationPoint(step: $0.0, loss: $0.1) }
        XCTAssertEqual(ConvergenceReport.stepsToReach(3.5, curve: curve), 150)
        XCTAssertEqual(ConvergenceReport.stepsToReach(2.5, curve: curve), 300)
        XCTAssertEqual(ConvergenceReport.stepsToReach(5.0, curve: curve), 100, "reached by the first point")
        XCTAssertNil(ConvergenceReport.stepsToReach(2.4, curve: curve), "never reached")
        XCTAssertNil(ConvergenceReport.stepsToReach(.nan, curve: curve))
    }

    func testParetoFront() {
        let pts: [(bytes: Double, loss: Double)] = [(1000, 3.0), (100, 3.1), (100, 3.3), (50, 3.5), (60, 3.6), (10, .infinity)]
        XCTAssertEqual(ConvergenceReport.paretoFront(pts), [0, 1, 3])
    }

    func testRows() throws {
        let dense = result("dense", fwd: 512, bwd: 512, vals: [(100, 4.0), (200, 3.0), (300, 2.5)])
        let sub = result("subspace", fwd: 20, bwd: 18, sync: 1, vals: [(100, 4.2), (200, 3.4), (300, 3.0)])
        let rows = ConvergenceReport.rows([dense, sub], dense: "dense", fp32Bytes: 512, bf16Bytes: 256)
        XCTAssertEqual(rows[0].compressionFP32, 1, accuracy: 1e-12)
        XCTAssertEqual(rows[1].totalBytes, 40)
        XCTAssertEqual(rows[1].compressionFP32, 1024.0 / 40, accuracy: 1e-12)
        XCTAssertEqual(rows[1].compressionBF16, 512.0 / 40, accuracy: 1e-12)
        XCTAssertEqual(rows[1].gapPercent!, 20, accuracy: 1e-9)
        XCTAssertEqual(rows[1].denseStepsToReach, 200)
        XCTAssertEqual(rows[1].stepsRatio!, 1.5, accuracy: 1e-12)
        XCTAssert(rows[0].onFront && rows[1].onFront)
        let md = ConvergenceReport.markdown(rows, notes: ["n"])
        XCTAssert(md.contains("| subspace | 20.0 | 18.0 | 1.00 | 25.6× | 12.8× | 3.0000 | +20.0% | 200 | 1.50 |"), md)
        let svg = ConvergenceReport.paretoPlot(rows, dense: "dense", caption: "cap").render()
        XCTAssert(svg.contains("dense + 2%") && svg.contains("cap") && svg.contains(">subspace<"), "labels name the points")
        XCTAssert(svg.contains("fixed subspace") && svg.contains("dense and quantized dense"), "the legend names the families")
        // A variant far worse than dense is left off the plot and named in the caption.
        let bad = result("projector", fwd: 20, bwd: 18, vals: [(300, 9.0)])
        let all = ConvergenceReport.rows([dense, sub, bad], dense: "dense", fp32Bytes: 512, bf16Bytes: 256)
        let svg2 = ConvergenceReport.paretoPlot(all, dense: "dense", caption: "cap").render()
        XCTAssert(svg2.contains("off the plot: projector 9.000") && !svg2.contains(">projector<"), svg2)
        XCTAssertEqual(ConvergenceReport.shortLabel("subspace k=16 int8 E_fixed σ=1 +norm"), "k16 int8 σ1 +norm")
        let csv = ConvergenceReport.csv(rows)
        XCTAssertEqual(csv.split(separator: "\n").count, 3)
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: ConvergenceReport.json(rows, notes: [])))
    }

    func testNonFiniteFiguresGoOutAsStrings() throws {
        // One stage sends nothing (compression unbounded); a diverged run's loss is NaN.
        let dense = result("dense", fwd: 0, bwd: 0, vals: [(100, 3.0)])
        let bad = result("diverged", fwd: 0, bwd: 0, vals: [(100, .nan)])
        let rows = ConvergenceReport.rows([dense, bad], dense: "dense", fp32Bytes: 512, bf16Bytes: 256)
        XCTAssertEqual(rows[0].compressionFP32, .infinity)
        let text = String(decoding: try ConvergenceReport.json(rows, notes: []), as: UTF8.self)
        XCTAssert(text.contains("\"inf\"") && text.contains("\"nan\""), text)
        XCTAssertNoThrow(try SeedSummary.json(SeedSummary.rows([(1, rows)]), notes: []))
        XCTAssert(SeedSummary.markdown(SeedSummary.rows([(1, rows)]), notes: []).contains("| dense | 0.0 | – | 1 |"))
        let back = try ConvergenceResult.jsonDecoder().decode(ConvergenceResult.self, from: ConvergenceResult.jsonEncoder().encode(bad))
        XCTAssert(back.finalValidation!.isNaN, "a run file with a NaN loss reads back")
        let svg = ConvergenceReport.paretoPlot(rows, dense: "dense", caption: "cap").render()
        XCTAssert(svg.contains("not plotted: dense 3.000"), svg)
        XCTAssert(ConvergenceReport.curvesPlot(rows, dense: "dense", caption: "cap").render().contains("<svg"))
    }

    func testSeedSummaryPairsEachSeedWithItsDense() throws {
        // Gaps are taken per seed against that seed's dense, then averaged: a seed that moves
        // every variant (dense too) does not widen the spread.
        func seed(_ s: UInt64, dense d: Double, sub: Double?) -> (seed: UInt64, rows: [ConvergenceRow]) {
            var rs = [result("dense", fwd: 512, bwd: 512, vals: [(300, d)])]
            if let sub { rs.append(result("k16", fwd: 20, bwd: 18, vals: [(300, sub)])) }
            return (s, ConvergenceReport.rows(rs, dense: "dense", fp32Bytes: 512, bf16Bytes: 256))
        }
        let rows = SeedSummary.rows([seed(1, dense: 3.0, sub: 3.09), seed(2, dense: 3.3, sub: 3.366), seed(3, dense: 2.9, sub: nil)])
        XCTAssertEqual(rows.map(\.label), ["dense", "k16"])
        XCTAssertEqual(rows[0].seeds, [1, 2, 3])
        XCTAssertEqual(rows[1].seeds, [1, 2], "a seed the variant did not run is left out")
        XCTAssertEqual(rows[1].gapsPercent[0], 3, accuracy: 1e-9)
        XCTAssertEqual(rows[1].gapsPercent[1], 2, accuracy: 1e-9)
        XCTAssertEqual(rows[1].meanGapPercent, 2.5, accuracy: 1e-9)
        XCTAssertEqual(rows[1].gapSpreadPercent, 0.5.squareRoot(), accuracy: 1e-9, "sample sd of 3 % and 2 %")
        XCTAssertEqual(rows[1].meanLoss, 3.228, accuracy: 1e-9)
        XCTAssertEqual(rows[0].gapSpreadPercent, 0, "dense against itself")
        XCTAssertEqual(rows[1].compressionFP32, 1024.0 / 38, accuracy: 1e-9)
        let md = SeedSummary.markdown(rows, notes: ["n"])
        XCTAssert(md.contains("| k16 | 38.0 | 26.9× | 2 | 3.2280 | +2.5 % ± 0.7 | 1: +3.0%, 2: +2.0% |"), md)
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: SeedSummary.json(rows, notes: [])))
    }

    func testNiceTicks() {
        let loss = SVGPlot.niceTicks(2.93, 3.61)
        XCTAssertEqual(loss.count, 6)
        for (a, b) in zip(loss, [2.8, 3.0, 3.2, 3.4, 3.6, 3.8]) { XCTAssertEqual(a, b, accuracy: 1e-9) }
        let t = SVGPlot.niceTicks(0, 97)
        XCTAssertEqual(t, [0, 20, 40, 60, 80, 100])
        XCTAssertEqual(SVGPlot.logTicks(20e6, 1e9), [20e6, 50e6, 100e6, 200e6, 500e6, 1e9])
        XCTAssertEqual(SVGPlot.logTicks(252, 1660), [300, 400, 500, 600, 800, 1000, 1500], "under a decade: finer ticks")
        XCTAssertEqual(SVGPlot.tick(200e6), "200M")
        XCTAssertEqual(SVGPlot.tick(0.5), "0.5")
    }

    func testCaptionWrapsAndLabelsStayApart() {
        XCTAssertEqual(SVGPlot.wrap("aa bb cc dd", columns: 5), ["aa bb", "cc dd"])
        XCTAssertEqual(SVGPlot.wrap("averyveryverylongword x", columns: 5), ["averyveryverylongword", "x"])
        XCTAssertEqual(SVGPlot.wrap("", columns: 5), [""])
        // Two points at the same place: their labels must not share a line; a point at the
        // right edge gets its label on its left (inside the plot, not over the legend).
        var plot = SVGPlot(title: "t", xLabel: "x", yLabel: "y",
                           series: [.init(name: "s", points: [(1, 1), (1, 1.0001), (10, 2)], line: false, markers: true,
                                          labels: ["first", "second", "rightmost point with a long label"])],
                           caption: String(repeating: "word ", count: 60))
        plot.width = 820
        let svg = plot.render()
        let a = Self.placement(of: "first", in: svg)?.y, b = Self.placement(of: "second", in: svg)?.y
        XCTAssertNotNil(a); XCTAssertNotNil(b)
        XCTAssertGreaterThanOrEqual(abs(a! - b!), 11, "labels of coinciding points overprint")
        XCTAssertTrue(svg.contains("text-anchor=\"end\" font-size=\"10.5\" fill=\"#333\">rightmost point with a long label<"), "label at the right edge not moved left")
        XCTAssertGreaterThan(svg.components(separatedBy: ">word word").count - 1, 1, "a 300-character caption must wrap")
    }

    func testCrowdedLabelsMoveFurtherWithLeaderLines() {
        // Seven points on one spot, as the Pareto plot has where variants tie in bytes: every
        // label is drawn, no two on one side of the spot share a line, and those more than one
        // line away from their point are joined to it by a leader line.
        let names = (1...7).map { "variant number \($0)" }
        var plot = SVGPlot(title: "t", xLabel: "x", yLabel: "y",
                           series: [.init(name: "s", points: names.indices.map { (1.0 + 1e-6 * Double($0), 2.0) } + [(0.5, 1.0), (3, 3.0)],
                                          line: false, markers: true, labels: names + ["low", "high"])])
        plot.width = 820
        let svg = plot.render()
        var ys: [(y: Double, left: Bool)] = []
        for n in names {
            guard let p = Self.placement(of: n, in: svg) else { XCTFail("\(n): label left out"); continue }
            ys.append(p)
        }
        // Labels on one side of the spot share x ranges: they must be at least 11 px apart.
        for left in [false, true] {
            let side = ys.filter { $0.left == left }.map(\.y).sorted()
            XCTAssertGreaterThanOrEqual(zip(side, side.dropFirst()).map { $1 - $0 }.min() ?? 99, 11, "labels overprint: \(side)")
        }
        XCTAssertGreaterThanOrEqual(svg.components(separatedBy: "stroke=\"#999\" stroke-width=\"0.7\"").count - 1, 1, "no leader line for a far label")
    }

    func testManyLabelsBecomeNumbersWithAKey() {
        // Past `numberLabelsAbove` labelled points each point carries its number and a key under
        // the plot names it; at or below it the names sit beside the points. Reference lines
        // differ in dash pattern, in the plot and in the legend.
        func plot(_ n: Int) -> String {
            let names: [String] = (1...n).map { "variant \($0)" }
            let half = n / 2
            var first: [(x: Double, y: Double)] = [], second: [(x: Double, y: Double)] = []
            for i in 0..<half { first.append((x: Double(i + 1), y: 2.0 + 0.01 * Double(i))) }
            for i in half..<n { second.append((x: Double(i + 1), y: 2.5)) }
            let a = SVGPlot.Series(name: "a", points: first, line: false, labels: Array(names[..<half]))
            let b = SVGPlot.Series(name: "b", points: second, line: false, labels: Array(names[half...]))
            var p = SVGPlot(title: "t", xLabel: "x", yLabel: "y", series: [a, b])
            p.hLines = [(2.0, "ref one"), (2.1, "ref two"), (2.2, "ref three")]
            return p.render()
        }
        let many = plot(15)
        for i in 1...15 {
            XCTAssertEqual(many.components(separatedBy: ">variant \(i)</text>").count - 1, 1, "variant \(i) not once in the key")
            XCTAssertGreaterThanOrEqual(many.components(separatedBy: ">\(i)</text>").count - 1, 2, "number \(i) not at its point and in the key")
        }
        XCTAssertTrue(many.contains("fill=\"\(SVGPlot.palette[1])\">15</text>"), "the key's number has its series' colour")
        let few = plot(12)
        XCTAssertFalse(few.contains(">1</text>") || few.contains("font-weight=\"bold\""), "12 labels still sit beside their points")
        XCTAssertNotNil(Self.placement(of: "variant 12", in: few))
        for dash in SVGPlot.referenceDashes.prefix(3) where !dash.isEmpty {
            XCTAssertEqual(few.components(separatedBy: "stroke=\"#777\"\(dash)/>").count - 1, 2, "reference line and legend entry share '\(dash)'")
        }
        XCTAssertEqual(Set(SVGPlot.referenceDashes.prefix(3)).count, 3)
    }

    /// Where a point label was drawn: its baseline y and whether it sits left of its point
    /// (anchored at its end); nil when the label is not in the SVG.
    private static func placement(of label: String, in svg: String) -> (y: Double, left: Bool)? {
        guard let r = svg.range(of: ">\(label)</text>") else { return nil }
        let head = svg[..<r.lowerBound]
        guard let t = head.range(of: "<text ", options: .backwards), let yr = head[t.upperBound...].range(of: "y=\""),
              let y = Double(head[yr.upperBound...].prefix { $0 != "\"" }) else { return nil }
        return (y, head[t.upperBound...].contains("text-anchor=\"end\""))
    }
}

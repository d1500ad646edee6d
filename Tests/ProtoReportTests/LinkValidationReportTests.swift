// The emulator-vs-real table: medians from step records, pairing by file name, tolerance marks.
import XCTest
@testable import ProtoReport

final class LinkValidationReportTests: XCTestCase {
    func log(_ times: [Double]) -> Data {
        Data(times.enumerated().map { #"{"type":"step","step":\#($0.offset + 1),"step_time_s":\#($0.element)}"# }
            .joined(separator: "\n").utf8) + Data("\n{\"type\":\"summary\"}".utf8)
    }

    func testMedianLeavesOutStartUp() {
        XCTAssertEqual(LinkValidationReport.medianStepMs(log([9, 9, 0.1, 0.3, 0.2]), skip: 2)!, 200, accuracy: 1e-9)
        XCTAssertEqual(LinkValidationReport.medianStepMs(log([9, 0.1, 0.2, 0.3, 0.4]), skip: 1)!, 250, accuracy: 1e-9)
        XCTAssertNil(LinkValidationReport.medianStepMs(log([1, 2]), skip: 2))
    }

    func testPairsRunsAndMarksTolerance() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lvr-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func put(_ codec: String, _ h: Int, _ real: Bool, _ link: String, _ ms: Double) throws {
            try log([5, ms / 1000, ms / 1000, ms / 1000]).write(to: dir.appendingPathComponent(LinkValidationReport.fileName(codec: codec, hosts: h, real: real, link: link)))
        }
        try put("dense", 2, false, "80mbit", 500); try put("dense", 2, true, "80mbit", 600)
        try put("subspace:16", 3, false, "20mbit/200mbit", 300); try put("subspace:16", 3, true, "20mbit/200mbit", 310)
        try put("dense", 2, false, "off", 300); try put("dense", 2, true, "off", 500)
        try put("dense", 3, false, "off", 400); try put("dense", 3, true, "off", 300)  // TCP faster than shared memory
        try put("dense", 2, false, "20mbit", 900)  // no real run: left out
        let rows = try LinkValidationReport.rows(in: dir, skip: 1)
        XCTAssertEqual(rows.count, 4)
        let mixed = try XCTUnwrap(rows.first { $0.hosts == 3 && $0.codec == "subspace:16" })
        XCTAssertEqual(mixed.link, "20mbit/200mbit")
        XCTAssertEqual(mixed.ratio, 300.0 / 310, accuracy: 1e-9)
        let md = LinkValidationReport.markdown(rows)
        XCTAssert(md.contains("| 2 | dense | 80mbit | 500.0 | 600.0 | 0.83 | no (±15 %) |"), md)
        XCTAssert(md.contains("| 3 | subspace:16 | 20mbit/200mbit | 300.0 | 310.0 | 0.97 | yes (±15 %) |"), md)
        XCTAssert(md.contains("| 2 | dense | unshaped (shared memory vs TCP) | 300.0 | 500.0 | 0.60 | no (TCP ≤ 1.10× shared memory) |"), md)
        XCTAssert(md.contains("| 3 | dense | unshaped (shared memory vs TCP) | 400.0 | 300.0 | 1.33 | yes (TCP ≤ 1.10× shared memory) |"), md)
        let svg = LinkValidationReport.plot(rows, caption: "c").render()
        XCTAssert(svg.contains("dense, 2 hosts") && svg.contains("emulated = real"), "legend names the series")
    }
}

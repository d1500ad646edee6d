// Model files: round trip (dense and subspace), and every damaged form refused by name.
import XCTest
@testable import ProtoCore

final class ModelFileTests: XCTestCase {
    func testRoundTripAndDamage() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pm-model-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        for sub in [nil, SubspaceConfig(rank: 4, mode: .reparam)] {
            var cfg = try ModelConfig.preset("tiny")
            cfg.subspace = sub
            let m = StageModel(config: cfg, stage: .whole(cfg), batchSize: 1)
            let url = dir.appendingPathComponent("model.bin")
            try m.params.toArray().withUnsafeBufferPointer { try ModelFile.save(config: cfg, params: $0, to: url) }
            let back = try ModelFile.load(url)
            XCTAssertEqual(back.config, cfg)
            XCTAssertEqual(back.params.toArray(), m.params.toArray())
        }
        let url = dir.appendingPathComponent("model.bin")
        let good = try Data(contentsOf: url)
        func refused(_ data: Data, _ text: String) throws {
            try data.write(to: url)
            XCTAssertThrowsError(try ModelFile.load(url)) { XCTAssert("\($0)".contains(text) && "\($0)".contains(url.path), "\($0)") }
        }
        try refused(good.prefix(good.count - 4), "disagrees with its header")
        var bad = good; bad[0] ^= 1
        try refused(bad, "bad magic")
        bad = good; bad[4] = 9
        try refused(bad, "version 9")
        try refused(Data([1, 2, 3]), "only 3 bytes")
        XCTAssertThrowsError(try ModelFile.load(dir.appendingPathComponent("none.bin"))) { XCTAssert("\($0)".contains("not found")) }
    }
}

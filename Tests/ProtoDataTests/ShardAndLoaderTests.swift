// Shard format (llm.c), every malformed-shard case, loader determinism and resume, and
// the prepare pipeline's all-or-nothing output.
import XCTest
import Foundation
import ProtoCore
import ProtoData

final class ShardTests: XCTestCase {
    func testWriteReadRoundTripAndHeader() throws {
        let url = try tempDir().appendingPathComponent("train_000.bin")
        let toks: [UInt16] = (0..<1000).map { UInt16($0 % 300) }
        try Shard.write(toks, to: url)
        XCTAssertEqual(try Shard.read(url, vocabSize: 300), toks)
        let data = try Data(contentsOf: url)
        XCTAssertEqual(data.count, 1024 + 2000)
        let header = data.withUnsafeBytes { b in (0..<3).map { b.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self) } }
        XCTAssertEqual(header, [20240520, 1, 1000], "llm.c header")
        XCTAssertEqual(data[1024], 0); XCTAssertEqual(data[1026], 1, "uint16 little-endian tokens")
    }

    func testEveryBadShardIsRefusedWithTheFix() throws {
        let dir = try tempDir()
        let url = dir.appendingPathComponent("val_000.bin")
        let good: [UInt16] = (0..<100).map { UInt16($0) }
        func corrupt(_ mutate: (inout Data) -> Void, vocab: Int = 256, expect needle: String, line: UInt = #line) throws {
            try Shard.write(good, to: url)
            var d = try Data(contentsOf: url)
            mutate(&d)
            try d.write(to: url)
            XCTAssertThrowsError(try Shard.read(url, vocabSize: vocab), line: line) { e in
                let m = "\(e)"
                XCTAssert(m.contains(needle), "\(m) should mention \(needle)", line: line)
                XCTAssert(m.contains(url.path) && m.contains("protomodel prepare"), "\(m) should name file and fix", line: line)
            }
        }
        try corrupt({ $0[0] = 0x34; $0[1] = 0x12 }, expect: "bad magic")
        try corrupt({ $0[4] = 2 }, expect: "version 2")
        try corrupt({ $0.removeLast(10) }, expect: "header says 100 tokens")
        try corrupt({ $0.append(contentsOf: [0, 0]) }, expect: "header says 100 tokens")
        try corrupt({ $0 = $0.prefix(100) }, expect: "shorter than the 1024-byte header")
        try corrupt({ _ in }, vocab: 50, expect: "token 50 at position 50")
        XCTAssertThrowsError(try Shard.read(dir.appendingPathComponent("x.bin"), vocabSize: 10)) { XCTAssert("\($0)".contains("not found")) }
        XCTAssertThrowsError(try Shard.list(in: dir, split: "train")) { XCTAssert("\($0)".contains("train_000.bin")) }
    }
}

final class LoaderTests: XCTestCase {
    func makeShards() throws -> (URL, [URL]) {
        let dir = try tempDir()
        var urls: [URL] = []
        for s in 0..<2 {
            let u = dir.appendingPathComponent("train_00\(s).bin")
            try Shard.write((0..<500).map { UInt16(($0 * 7 + s * 3) % 97) }, to: u)
            urls.append(u)
        }
        return (dir, urls)
    }

    func testTargetsAreInputsShiftedByOne() throws {
        let (_, urls) = try makeShards()
        let l = try DataLoader(shards: urls, vocabSize: 97, seqLen: 16, batchSize: 3, seed: 1, shuffle: true)
        let mb = l.next()
        XCTAssertEqual(mb.ids.count, 48)
        for r in 0..<3 { XCTAssertEqual(Array(mb.ids[(r * 16 + 1)..<(r * 16 + 16)]), Array(mb.targets[(r * 16)..<(r * 16 + 15)])) }
    }

    func testDeterministicFromSeedAndResumable() throws {
        let (_, urls) = try makeShards()
        func loader(_ seed: UInt64) throws -> DataLoader { try DataLoader(shards: urls, vocabSize: 97, seqLen: 16, batchSize: 4, seed: seed, shuffle: true) }
        let a = try loader(5), b = try loader(5), c = try loader(6)
        let seqA = (0..<30).map { _ in a.next().ids }   // 30 batches > one epoch (60 windows / 4)
        XCTAssertEqual(seqA, (0..<30).map { _ in b.next().ids }, "same seed, same batches")
        XCTAssertNotEqual(seqA.prefix(3), (0..<3).map { _ in c.next().ids }[...], "another seed, another order")
        // Resume: a fresh loader restored to a saved position continues identically.
        let d = try loader(5)
        for _ in 0..<17 { _ = d.next() }
        let saved = d.position
        let rest = (0..<10).map { _ in d.next().ids }
        let e = try loader(5)
        e.restore(saved)
        XCTAssertEqual((0..<10).map { _ in e.next().ids }, rest)
        XCTAssertGreaterThan(saved.epoch + d.position.epoch, 0, "crossed an epoch boundary")
    }

    func testFixedValidationSliceDoesNotMove() throws {
        let (_, urls) = try makeShards()
        let l = try DataLoader(shards: urls, vocabSize: 97, seqLen: 16, batchSize: 2, seed: 0, shuffle: false)
        let first = l.fixedBatches(3).map(\.ids)
        _ = l.next()
        XCTAssertEqual(l.fixedBatches(3).map(\.ids), first)
        XCTAssertEqual(l.position, DataLoader.Position(epoch: 0, index: 2))
    }

    func testTooLittleDataIsAClearError() throws {
        let (_, urls) = try makeShards()
        XCTAssertThrowsError(try DataLoader(shards: urls, vocabSize: 97, seqLen: 400, batchSize: 8, seed: 0, shuffle: true)) {
            XCTAssert("\($0)".contains("fewer than one batch"), "\($0)")
        }
    }
}

final class DatasetBuilderTests: XCTestCase {
    func testBuildsConsistentDataset() throws {
        let dir = try tempDir()
        let corpus = dir.appendingPathComponent("corpus.txt")
        try Data(sampleCorpus().utf8).write(to: corpus)
        let out = dir.appendingPathComponent("ds").path
        let st = try DatasetBuilder.build(input: corpus.path, out: out, vocabSize: 320, valEvery: 10, shardTokens: 20_000)
        XCTAssertEqual(st.vocabSize, 320)
        let tok = try Tokenizer.load(from: URL(fileURLWithPath: out + "/tokenizer.json"))
        let train = try Shard.list(in: URL(fileURLWithPath: out), split: "train")
        XCTAssertGreaterThan(train.count, 1, "split into several shards")
        let all = try train.flatMap { try Shard.read($0, vocabSize: 320) }
        XCTAssertEqual(all.count, st.trainTokens)
        XCTAssert(tok.decodeText(Array(all.prefix(200))).hasPrefix("  1 "), "shards decode back to the corpus")
        XCTAssertGreaterThan(st.valTokens, st.trainTokens / 20)
    }

    func testFailureLeavesPreviousDatasetIntact() throws {
        let dir = try tempDir()
        let corpus = dir.appendingPathComponent("corpus.txt")
        try Data(sampleCorpus().utf8).write(to: corpus)
        let out = dir.appendingPathComponent("ds").path
        _ = try DatasetBuilder.build(input: corpus.path, out: out, vocabSize: 300, valEvery: 10, shardTokens: 1 << 20)
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/tokenizer.json"))
        // An empty and a missing corpus fail before touching the old dataset.
        let empty = dir.appendingPathComponent("empty.txt")
        try Data().write(to: empty)
        XCTAssertThrowsError(try DatasetBuilder.build(input: empty.path, out: out, vocabSize: 300, valEvery: 10, shardTokens: 1 << 20)) {
            XCTAssert("\($0)".contains("is empty"), "\($0)")
        }
        XCTAssertThrowsError(try DatasetBuilder.build(input: dir.path + "/missing.txt", out: out, vocabSize: 300, valEvery: 10, shardTokens: 1 << 20)) {
            XCTAssert("\($0)".contains("not found") && "\($0)".contains("--input"), "\($0)")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/tokenizer.json")), before)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("partial") }
        XCTAssertEqual(leftovers, [], "no staging folder left behind")
    }
}

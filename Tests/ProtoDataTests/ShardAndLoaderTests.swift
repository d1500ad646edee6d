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

    /// A prepared folder that no longer matches its meta.json is refused before training: a
    /// train shard deleted, a val shard from elsewhere, another tokenizer of the same size.
    func testDataMustMatchItsMeta() throws {
        let dir = try tempDir()
        let corpus = dir.appendingPathComponent("corpus.txt")
        try Data(sampleCorpus().utf8).write(to: corpus)
        let out = dir.appendingPathComponent("ds").path
        _ = try DatasetBuilder.build(input: corpus.path, out: out, vocabSize: 320, valEvery: 10, shardTokens: 20_000)
        XCTAssertNoThrow(try PreparedData.check(out))
        XCTAssertThrowsError(try PreparedData.check(corpus.path)) { XCTAssert("\($0)".contains("is a file, not a folder"), "\($0)") }
        XCTAssertThrowsError(try PreparedData.check(dir.path)) { XCTAssert("\($0)".contains("holds no prepared data"), "\($0)") }
        let fm = FileManager.default
        let train = try Shard.list(in: URL(fileURLWithPath: out), split: "train")
        let moved = dir.appendingPathComponent("moved.bin")
        try fm.moveItem(at: train[1], to: moved)
        XCTAssertThrowsError(try PreparedData.check(out)) { XCTAssert("\($0)".contains("train_*.bin shards hold") && "\($0)".contains("prepare"), "\($0)") }
        try fm.moveItem(at: moved, to: train[1])
        XCTAssertNoThrow(try PreparedData.check(out))
        let val = URL(fileURLWithPath: out + "/val_000.bin")
        let valData = try Data(contentsOf: val)
        try Shard.write([1, 2, 3], to: val)
        XCTAssertThrowsError(try PreparedData.check(out)) { XCTAssert("\($0)".contains("val tokens"), "\($0)") }
        try valData.write(to: val)
        // Another tokenizer with the same vocabulary size.
        let other = dir.appendingPathComponent("other.txt")
        try Data(String(sampleCorpus().reversed()).utf8).write(to: other)
        _ = try DatasetBuilder.build(input: other.path, out: dir.appendingPathComponent("ds2").path, vocabSize: 320, valEvery: 10, shardTokens: 20_000)
        let tokURL = URL(fileURLWithPath: out + "/tokenizer.json")
        try fm.removeItem(at: tokURL)
        try fm.copyItem(at: dir.appendingPathComponent("ds2/tokenizer.json"), to: tokURL)
        XCTAssertThrowsError(try PreparedData.check(out)) { XCTAssert("\($0)".contains("not the tokenizer the shards"), "\($0)") }
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

    /// Corpora with too few lines for 100-line blocks (one long line, a single sentence)
    /// still split: by byte chunks that end at whitespace.
    func testFewLinesSplitByChunks() throws {
        let dir = try tempDir()
        let oneLine = sampleCorpus(lines: 400).replacingOccurrences(of: "\n", with: " ")
        let corpus = dir.appendingPathComponent("oneline.txt")
        try Data(oneLine.utf8).write(to: corpus)
        let st = try DatasetBuilder.build(input: corpus.path, out: dir.appendingPathComponent("d1").path, vocabSize: 300,
                                          valEvery: 20, shardTokens: 1 << 20)
        XCTAssertGreaterThan(st.valBytes, st.corpusBytes / 30, "about one part in 20 goes to validation")
        XCTAssertLessThan(st.valBytes, st.corpusBytes / 12)
        let (train, val) = Corpus.split(Array(oneLine.utf8), valEvery: 20)
        XCTAssertEqual(train.count + val.count, oneLine.utf8.count, "nothing lost or repeated")
        XCTAssert(val.last == 0x20 || val.last == UInt8(ascii: "."), "chunks end at whitespace, words stay whole")
        let tiny = dir.appendingPathComponent("tiny.txt")
        try Data("In the beginning God created\n".utf8).write(to: tiny)
        let t = try DatasetBuilder.build(input: tiny.path, out: dir.appendingPathComponent("d2").path, vocabSize: 260,
                                         valEvery: 2, shardTokens: 1 << 20)
        XCTAssert(t.valBytes > 0 && t.trainBytes > 0)
        // KJV-sized corpora keep the 100-line blocks (figures stay comparable).
        let many = Array(sampleCorpus(lines: 4000).utf8)
        let (tr, va) = Corpus.split(many, valEvery: 20)
        XCTAssertEqual(va.count + tr.count, many.count)
        XCTAssertEqual(va.filter { $0 == 0x0A }.count, 200, "the last of every 20 blocks of 100 lines")
    }

    /// prepare never deletes what it did not write: a folder with other files, the input
    /// itself, a regular file as --out are refused and left as they were.
    func testOutputIsCheckedBeforeAnyWork() throws {
        let dir = try tempDir()
        let corpus = dir.appendingPathComponent("corpus.txt")
        try Data(sampleCorpus(lines: 500).utf8).write(to: corpus)
        func build(_ out: String) throws { _ = try DatasetBuilder.build(input: corpus.path, out: out, vocabSize: 280, valEvery: 5, shardTokens: 1 << 20) }
        let mine = dir.appendingPathComponent("mine")
        try FileManager.default.createDirectory(at: mine, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: mine.appendingPathComponent("notes.txt"))
        XCTAssertThrowsError(try build(mine.path)) { XCTAssert("\($0)".contains("did not write (e.g. notes.txt)"), "\($0)") }
        XCTAssertEqual(try String(contentsOf: mine.appendingPathComponent("notes.txt"), encoding: .utf8), "keep me")
        XCTAssertThrowsError(try build(dir.path)) { XCTAssert("\($0)".contains("would contain the input"), "\($0)") }
        XCTAssertThrowsError(try build(corpus.path)) { XCTAssert("\($0)".contains("would contain the input"), "\($0)") }
        XCTAssertEqual(try Data(contentsOf: corpus).count, sampleCorpus(lines: 500).utf8.count, "the input is untouched")
        let file = dir.appendingPathComponent("afile")
        try Data("x".utf8).write(to: file)
        XCTAssertThrowsError(try build(file.path)) { XCTAssert("\($0)".contains("is a file"), "\($0)") }
        // Its own earlier output is replaced (and an empty folder is fine).
        let ds = dir.appendingPathComponent("ds").path
        try build(ds); try build(ds)
        // Named with a trailing slash or as ".", the output is still replaced as a whole.
        try build(ds + "/")
        XCTAssert(FileManager.default.fileExists(atPath: ds + "/tokenizer.json"), "rebuilt through 'ds/'")
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(ds)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        try build(".")
        XCTAssert(FileManager.default.fileExists(atPath: ds + "/train_000.bin"), "rebuilt through '.'")
        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        try build(empty.path)
        XCTAssert(FileManager.default.fileExists(atPath: empty.path + "/tokenizer.json"))
    }
}

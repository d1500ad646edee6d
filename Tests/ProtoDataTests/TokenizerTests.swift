// Byte-level BPE: training merges, exact round trips, the file format and its errors.
import XCTest
import Foundation
import ProtoCore
@testable import ProtoData

final class TokenizerTests: XCTestCase {
    func testLearnsMostFrequentPairFirst() throws {
        // Chunks: " abc"×3, " abd"×2, " xy". Pairs " a" and "ab" both occur 5 times; the tie
        // goes to the smaller pair (" " < "a"), then " a"+"b" (5) beats "bc" (3).
        let tok = try Tokenizer.train(Array(" abc abc abc abd abd xy".utf8), vocabSize: 259)
        XCTAssertEqual(tok.merges.count, 3)
        XCTAssertEqual(tok.bytes(of: 256), Array(" a".utf8))
        XCTAssertEqual(tok.bytes(of: 257), Array(" ab".utf8))
        XCTAssertEqual(tok.bytes(of: 258), Array(" abc".utf8))
        XCTAssertEqual(tok.encode(" abc abd"), [258, 257, UInt16(UInt8(ascii: "d"))])
        // A pair seen once is never merged: training stops early with a smaller vocabulary.
        XCTAssertEqual(try Tokenizer.train(Array("xy".utf8), vocabSize: 300).vocabSize, 256)
    }

    func testRoundTripsAnyBytes() throws {
        let tok = try Tokenizer.train(Array(sampleCorpus(lines: 400).utf8), vocabSize: 400)
        XCTAssertGreaterThan(tok.merges.count, 50)
        var rng = SplitMix64(seed: 3)
        for len in [0, 1, 2, 17, 1000] {
            let bytes = (0..<len).map { _ in UInt8(rng.int(below: 256)) }  // includes invalid UTF-8
            XCTAssertEqual(tok.decode(tok.encode(bytes)), bytes, "random bytes, length \(len)")
        }
        let text = "In the beginning God created the heaven and the earth.\n\n  2 And   the earth\twas — void; ünïcödé 123456"
        XCTAssertEqual(tok.decodeText(tok.encode(text)), text)
        XCTAssertLessThan(tok.encode(sampleCorpus(lines: 50)).count, sampleCorpus(lines: 50).utf8.count / 2, "merges compress")
    }

    func testChunksPartitionInput() {
        let s = Array("  Hello,  world!!\n\n x1 23 ".utf8)
        var pieces: [String] = []
        s.withUnsafeBufferPointer { b in forEachChunk(b) { pieces.append(String(decoding: b[$0], as: UTF8.self)) } }
        XCTAssertEqual(pieces.joined(), String(decoding: s, as: UTF8.self))
        XCTAssertEqual(pieces, [" ", " Hello", ",", " ", " world", "!!", "\n\n", " x", "1", " 23", " "])
    }

    func testSaveLoadAndBadFiles() throws {
        let dir = try tempDir()
        let tok = try Tokenizer.train(Array(sampleCorpus(lines: 200).utf8), vocabSize: 300)
        let url = dir.appendingPathComponent("tokenizer.json")
        try tok.save(to: url)
        let back = try Tokenizer.load(from: url)
        XCTAssertEqual(back.vocabSize, tok.vocabSize)
        XCTAssertEqual(back.encode("the LORD said"), tok.encode("the LORD said"))

        func expectError(_ json: String, contains needle: String, line: UInt = #line) throws {
            try Data(json.utf8).write(to: url)
            XCTAssertThrowsError(try Tokenizer.load(from: url), line: line) { e in
                XCTAssert("\(e)".contains(needle), "\(e) should mention \(needle)", line: line)
                XCTAssert("\(e)".contains(url.path), "\(e) should name the file", line: line)
                XCTAssert("\(e)".contains("protomodel prepare"), "\(e) should say how to fix it", line: line)
            }
        }
        try expectError(#"{"format":"protomodel-bpe","version":2,"vocab_size":256,"merges":[]}"#, contains: "version 2")
        try expectError(#"{"format":"sentencepiece","version":1,"vocab_size":256,"merges":[]}"#, contains: "format")
        try expectError(#"{"format":"protomodel-bpe","version":1,"vocab_size":257,"merges":[[0,300]]}"#, contains: "merge 0")
        try expectError("not json", contains: "not a protomodel tokenizer")
        // Merges that double one token 40 times would make a 1 TB token: refused by length.
        let doubling = (0..<40).map { m in m == 0 ? "[97,97]" : "[\(255 + m),\(255 + m)]" }.joined(separator: ",")
        try expectError(#"{"format":"protomodel-bpe","version":1,"vocab_size":296,"merges":["# + doubling + "]}", contains: "bytes are accepted")
        XCTAssertThrowsError(try Tokenizer.load(from: dir.appendingPathComponent("nope.json"))) {
            XCTAssert("\($0)".contains("not found"))
        }
    }

    /// Streaming output splits bytes only between whole UTF-8 characters.
    func testCompleteUTF8Prefix() {
        let text = Array("a½€😀".utf8)  // 1, 2, 3 and 4 bytes
        XCTAssertEqual(Tokenizer.completeUTF8Prefix([]), 0)
        XCTAssertEqual(Tokenizer.completeUTF8Prefix(text), text.count)
        for cut in 0...text.count {
            let n = Tokenizer.completeUTF8Prefix(Array(text[..<cut]))
            XCTAssertEqual(String(decoding: text[..<n], as: UTF8.self).utf8.count, n, "cut \(cut): no partial character")
            XCTAssert([0, 1, 3, 6, 10].contains(n) && n <= cut && cut - n < 4, "cut \(cut) → \(n)")
        }
        XCTAssertEqual(Tokenizer.completeUTF8Prefix([0x61, 0xFF]), 2, "an invalid byte counts as whole")
    }
}

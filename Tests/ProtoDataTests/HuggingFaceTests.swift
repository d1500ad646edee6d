// Models out and in: the exported dense-equivalent weights compute the same logits, raw and
// Arcee folders load back, an imported model's first step equals the original's next step,
// damaged or unsupported folders are refused naming each problem.
import XCTest
import ProtoCore
@testable import ProtoData

final class HuggingFaceTests: XCTestCase {
    func tiny(_ sub: SubspaceConfig?) throws -> ModelConfig {
        var c = try ModelConfig.preset("tiny")
        c.vocabSize = 300; c.nLayer = 3; c.subspace = sub; c.fixedEmbeddingStd = sub == nil ? nil : 1
        return c
    }
    func batch(_ c: ModelConfig, seed: UInt64) -> Microbatch {
        var r = SplitMix64(seed: seed)
        let t = (0...c.seqLen).map { _ in Int32(r.int(below: c.vocabSize)) }
        return Microbatch(ids: Array(t[0..<c.seqLen]), targets: Array(t[1...c.seqLen]))
    }

    func testLayerEmbeddingModelsGoOutRawOnly() throws {
        let dir = try tempDir()
        let tok = try Tokenizer.train(Array(sampleCorpus(lines: 300).utf8), vocabSize: 300)
        var cfg = try tiny(SubspaceConfig(rank: 4, mode: .reparam))
        cfg.layerEmbedding = true
        var tc = TrainConfig(); tc.batchSize = 1
        let a = LocalTrainer(model: StageModel(config: cfg, stage: .whole(cfg), batchSize: 1), train: tc)
        for s in 0..<2 { _ = a.step(s, [batch(cfg, seed: UInt64(s))]) }
        XCTAssertThrowsError(try HuggingFace.export(a.model, tokenizer: tok, to: dir.appendingPathComponent("arcee"), bf16: false, raw: false)) {
            XCTAssert("\($0)".contains("--layer-embedding") && "\($0)".contains("--raw"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("arcee").path), "nothing written")
        let out = dir.appendingPathComponent("raw")
        try HuggingFace.export(a.model, tokenizer: tok, to: out, bf16: false, raw: true)
        let (c2, params) = try HuggingFace.load(out)
        XCTAssertEqual(c2, cfg)
        XCTAssertEqual(params, a.model.params.toArray(), "the tables go out with the rest")
    }

    func testExportImportKeepsTheFunction() throws {
        let dir = try tempDir()
        let tok = try Tokenizer.train(Array(sampleCorpus(lines: 300).utf8), vocabSize: 300)
        for sub in [nil, SubspaceConfig(rank: 4, mode: .reparam), SubspaceConfig(rank: 4, mode: .projected)] {
            let cfg = try tiny(sub)
            var tc = TrainConfig(); tc.batchSize = 1
            tc.schedule = LRSchedule(maxLR: 1e-2, minLR: 1e-3, warmupSteps: 1, totalSteps: 10)
            let a = LocalTrainer(model: StageModel(config: cfg, stage: .whole(cfg), batchSize: 1), train: tc)
            for s in 0..<3 { _ = a.step(s, [batch(cfg, seed: UInt64(s))]) }
            for raw in [false, true] {
                let out = dir.appendingPathComponent("\(sub?.mode.rawValue ?? "dense")-\(raw)")
                try HuggingFace.export(a.model, tokenizer: tok, to: out, bf16: false, raw: raw)
                let (c2, params) = try HuggingFace.load(out)
                XCTAssertEqual(c2.subspace, raw ? cfg.subspace : nil, "raw keeps the factors, Arcee is dense")
                let b = StageModel(config: c2, stage: .whole(c2), batchSize: 1)
                b.params.copy(from: params)
                let mb = batch(cfg, seed: 99)
                let la = a.model.forward(slot: 0, ids: mb.ids, targets: mb.targets)!
                let lb = b.forward(slot: 0, ids: mb.ids, targets: mb.targets)!
                let n = cfg.seqLen * cfg.vocabSize
                let logitsA = Array(UnsafeBufferPointer(start: a.model.logits(slot: 0)!, count: n))
                let logitsB = Array(UnsafeBufferPointer(start: b.logits(slot: 0)!, count: n))
                XCTAssertLessThan(relDiff(logitsB, logitsA), 1e-5, "\(sub.map { "\($0.mode)" } ?? "dense") raw=\(raw): same logits")
                // Training from the imported model: its first step's loss is the original's next step's.
                let next = batch(cfg, seed: 3)
                let bt = LocalTrainer(model: b, train: tc)
                let lOrig = a.model.forward(slot: 0, ids: next.ids, targets: next.targets)!
                XCTAssertEqual(bt.step(0, [next]).loss, lOrig, accuracy: 1e-5 * abs(lOrig))
                _ = la; _ = lb
            }
        }
    }

    /// export writes only into an empty folder or an earlier export of its own: a foreign
    /// Hugging Face folder with the same file names is refused and left as it was.
    func testExportFolderMustBeEmptyOrAnEarlierExport() throws {
        let dir = try tempDir()
        let tok = try Tokenizer.train(Array(sampleCorpus(lines: 300).utf8), vocabSize: 300)
        let cfg = try tiny(nil)
        let model = StageModel(config: cfg, stage: .whole(cfg), batchSize: 1)
        XCTAssertNoThrow(try HuggingFace.checkExportFolder(dir.appendingPathComponent("new")), "a missing folder")
        let mine = dir.appendingPathComponent("mine")
        try HuggingFace.export(model, tokenizer: tok, to: mine, bf16: false, raw: false)
        XCTAssertNoThrow(try HuggingFace.checkExportFolder(mine), "an earlier export may be written again")
        try FileManager.default.removeItem(at: mine.appendingPathComponent("protomodel_tokenizer.json"))
        XCTAssertNoThrow(try HuggingFace.checkExportFolder(mine), "an interrupted export (model.safetensors first) too")

        let foreign = dir.appendingPathComponent("foreign")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
        try Data(#"{"model_type":"llama","hidden_size":4096}"#.utf8).write(to: foreign.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try HuggingFace.checkExportFolder(foreign)) { XCTAssert("\($0)".contains("not an earlier protomodel export"), "\($0)") }
        let other = try HuggingFace.safetensors([("w", [2], [1, 2])], bf16: false, metadata: ["format": "pt"])
        try other.write(to: foreign.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try HuggingFace.checkExportFolder(foreign)) { XCTAssert("\($0)".contains("written by another program"), "\($0)") }
        try Data("W".utf8).write(to: foreign.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try HuggingFace.checkExportFolder(foreign))
        try Data("keep".utf8).write(to: mine.appendingPathComponent("notes.txt"))
        XCTAssertThrowsError(try HuggingFace.checkExportFolder(mine)) { XCTAssert("\($0)".contains("holds notes.txt, which export did not write"), "\($0)") }
        XCTAssertEqual(try Data(contentsOf: foreign.appendingPathComponent("config.json")), Data(#"{"model_type":"llama","hidden_size":4096}"#.utf8))
    }

    func testSafetensorsAndConfigsAreChecked() throws {
        let dir = try tempDir()
        let t: [(name: String, shape: [Int], values: [Float])] = [("a", [2, 3], [1, 2, 3, 4, 5, 6]), ("b", [2], [7, 8])]
        for bf in [false, true] {
            let d = try HuggingFace.safetensors(t, bf16: bf, metadata: ["format": "pt"])
            let url = dir.appendingPathComponent("x.safetensors")
            try d.write(to: url)
            let back = try HuggingFace.readSafetensors(url)
            XCTAssertEqual(back["a"]?.values, [1, 2, 3, 4, 5, 6]); XCTAssertEqual(back["b"]?.shape, [2])
            XCTAssertEqual(Int(d.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }) % 8, 0, "header padded to 8 bytes")
            try d.prefix(d.count - 4).write(to: url)
            XCTAssertThrowsError(try HuggingFace.readSafetensors(url)) { XCTAssert("\($0)".contains("file's size"), "\($0)") }
        }
        var bomb = Data(); withUnsafeBytes(of: UInt64(1) << 40) { bomb.append(contentsOf: $0) }
        try bomb.write(to: dir.appendingPathComponent("y.safetensors"))
        XCTAssertThrowsError(try HuggingFace.readSafetensors(dir.appendingPathComponent("y.safetensors"))) { XCTAssert("\($0)".contains("does not fit"), "\($0)") }
        // Crafted headers: a shape whose product overflows, offsets near Int.max.
        func crafted(_ json: String) -> Data {
            var d = Data(); withUnsafeBytes(of: UInt64(json.utf8.count)) { d.append(contentsOf: $0) }
            d.append(Data(json.utf8)); d.append(Data(count: 16)); return d
        }
        for (json, says) in [(#"{"a":{"dtype":"F32","shape":[16777216,16777216,16777216,16777216],"data_offsets":[0,16]}}"#, "more values"),
                             (#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[9223372036854775000,9223372036854775807]}}"#, "file's size"),
                             (#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[8,0]}}"#, "file's size")] {
            let url = dir.appendingPathComponent("z.safetensors")
            try crafted(json).write(to: url)
            XCTAssertThrowsError(try HuggingFace.readSafetensors(url)) { XCTAssert("\($0)".contains(says), "\($0)") }
        }
        // An Arcee config protomodel cannot train: every problem named at once.
        let m = dir.appendingPathComponent("gqa")
        try FileManager.default.createDirectory(at: m, withIntermediateDirectories: true)
        try HuggingFace.safetensors(t, bf16: false, metadata: [:]).write(to: m.appendingPathComponent("model.safetensors"))
        let cfg = #"{"model_type":"arcee","hidden_act":"relu2","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"attention_bias":true,"tie_word_embeddings":true,"rope_parameters":{"rope_type":"yarn","rope_theta":10000}}"#
        try Data(cfg.utf8).write(to: m.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try HuggingFace.load(m)) { e in
            for w in ["num_key_value_heads", "attention_bias", "tie_word_embeddings", "rope_type yarn"] { XCTAssert("\(e)".contains(w), "\(e) names \(w)") }
        }
    }

    func testTokenizerJSONHasProtomodelsIds() throws {
        let tok = try Tokenizer.train(Array(sampleCorpus(lines: 300).utf8), vocabSize: 300)
        let j = try JSONSerialization.jsonObject(with: HuggingFace.tokenizerJSON(tok)) as! [String: Any]
        let model = j["model"] as! [String: Any]
        let vocab = model["vocab"] as! [String: Int]
        XCTAssertEqual(vocab.count, 300)
        XCTAssertEqual(vocab["Ġ"], 32, "byte 0x20 is Ġ in the byte-level alphabet")
        XCTAssertEqual((model["merges"] as! [[String]]).count, 44)
        // The split pattern reproduces protomodel's chunks (checked against `tokenizers` by tools/hf/check_export.py).
        let re = try NSRegularExpression(pattern: HuggingFace.splitPattern.replacingOccurrences(of: "\\x{", with: "\\x{"))
        for text in ["And God said, Let there be light:  and there was light.\n\n12:3  In  the", "  leading spaces\tand\ttabs 1999's", "Ünïcode wörds ok"] {
            let ns = text as NSString
            let theirs = re.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { ns.substring(with: $0.range) }
            var ours: [String] = []
            Array(text.utf8).withUnsafeBufferPointer { b in forEachChunk(b) { r in ours.append(String(decoding: b[r], as: UTF8.self)) } }
            XCTAssertEqual(theirs, ours, text)
        }
    }
}

func relDiff(_ a: [Float], _ b: [Float]) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); num += d * d; den += Double(b[i]) * Double(b[i]) }
    return (num / max(den, 1e-30)).squareRoot()
}

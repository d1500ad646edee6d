// Models out and in, in the Hugging Face layout: a folder that transformers opens with no
// custom code. protomodel's block is Arcee's (`ArceeForCausalLM`, model_type "arcee"):
// RMSNorm with a gain, rotate-half RoPE, attention without biases, a non-gated ReLU² MLP
// (hidden_act "relu2"), an untied LM head. Weights go out as (out, in) — protomodel keeps
// (in, out) — with the fused qkv split into q, k and v; subspace models go out as the
// equivalent dense model (E = E_fixed + E_S, W = W'·Uᵀ). The tokenizer goes out in the
// `tokenizers` format with the same ids: byte-level BPE behind a split that reproduces
// protomodel's chunking.
import Foundation
import ProtoCore

public enum HuggingFace {
    /// Why a model cannot be written as an Arcee model (nil when it can).
    public static func unsupported(_ c: ModelConfig) -> String? {
        if c.projector != nil { return "projector models put a projection between blocks that the Arcee architecture does not have; export with --raw for protomodel itself" }
        if c.normalizesSublayers { return "models trained with --sublayer-norm normalise sublayer outputs, which the Arcee architecture does not do; export with --raw for protomodel itself" }
        if c.hasLayerEmbedding { return "models trained with --layer-embedding add a token embedding inside every block, which the Arcee architecture does not have; export with --raw for protomodel itself" }
        return nil
    }

    /// The dense weights of `model` (a whole model) under transformers' names, shapes (out, in).
    public static func denseTensors(_ model: StageModel) throws -> [(name: String, shape: [Int], values: [Float])] {
        let c = model.config
        if let why = unsupported(c) { throw IOError(path: "model", problem: why) }
        let C = c.dModel, H = c.mlpHidden, V = c.vocabSize
        func param(_ n: String) -> (ParamTensor, UnsafeMutablePointer<Float>) {
            let t = model.layout.tensor(n)!
            return (t, model.params.ptr + t.offset)
        }
        /// (rows, out) effective weight of a write tensor: W, or W'·Uᵀ for reparam coordinates.
        func effective(_ n: String, rows: Int) -> [Float] {
            let (t, p) = param(n)
            if t.subspace, c.subspace?.mode == .reparam, let sub = model.subspace {
                var out = [Float](repeating: 0, count: rows * C)
                out.withUnsafeMutableBufferPointer { sub.expand(p, rows: rows, into: $0.baseAddress!, accumulate: false) }
                return out
            }
            return Array(UnsafeBufferPointer(start: p, count: t.count))
        }
        func transposed(_ a: [Float], rows: Int, cols: Int) -> [Float] {
            var out = [Float](repeating: 0, count: rows * cols)
            for r in 0..<rows { for k in 0..<cols { out[k * rows + r] = a[r * cols + k] } }
            return out
        }
        var out: [(String, [Int], [Float])] = []
        var emb = effective("wte", rows: V)
        if let f = model.fixed { for i in 0..<(V * C) { emb[i] += f.table.ptr[i] } }
        out.append(("model.embed_tokens.weight", [V, C], emb))
        for l in 0..<c.nLayer {
            let pre = "model.layers.\(l)."
            let (_, qkv) = param("h\(l).qkv")
            let q = UnsafeBufferPointer(start: qkv, count: C * 3 * C)
            for (j, name) in ["q_proj", "k_proj", "v_proj"].enumerated() {
                var w = [Float](repeating: 0, count: C * C)  // (out, in)
                for i in 0..<C { for o in 0..<C { w[o * C + i] = q[i * 3 * C + j * C + o] } }
                out.append((pre + "self_attn.\(name).weight", [C, C], w))
            }
            out.append((pre + "self_attn.o_proj.weight", [C, C], transposed(effective("h\(l).attn_proj", rows: C), rows: C, cols: C)))
            out.append((pre + "mlp.up_proj.weight", [H, C], transposed(Array(UnsafeBufferPointer(start: param("h\(l).fc").1, count: C * H)), rows: C, cols: H)))
            out.append((pre + "mlp.down_proj.weight", [C, H], transposed(effective("h\(l).fc_proj", rows: H), rows: H, cols: C)))
            out.append((pre + "input_layernorm.weight", [C], Array(UnsafeBufferPointer(start: param("h\(l).ln1").1, count: C))))
            out.append((pre + "post_attention_layernorm.weight", [C], Array(UnsafeBufferPointer(start: param("h\(l).ln2").1, count: C))))
        }
        out.append(("model.norm.weight", [C], Array(UnsafeBufferPointer(start: param("lnf").1, count: C))))
        out.append(("lm_head.weight", [V, C], transposed(Array(UnsafeBufferPointer(start: param("lm_head").1, count: C * V)), rows: C, cols: V)))
        return out
    }

    /// transformers' config.json for `c` (T becomes max_position_embeddings).
    public static func configJSON(_ c: ModelConfig, dtype: String) throws -> Data {
        let obj: [String: Any] = [
            "architectures": ["ArceeForCausalLM"], "model_type": "arcee",
            "vocab_size": c.vocabSize, "hidden_size": c.dModel, "intermediate_size": c.mlpHidden,
            "num_hidden_layers": c.nLayer, "num_attention_heads": c.nHead, "num_key_value_heads": c.nHead,
            "head_dim": c.headSize, "hidden_act": "relu2", "max_position_embeddings": c.seqLen,
            "rms_norm_eps": Double(c.normEps), "rope_parameters": ["rope_type": "default", "rope_theta": Double(c.ropeBase)],
            "attention_bias": false, "mlp_bias": false, "tie_word_embeddings": false, "use_cache": true,
            "initializer_range": Double(c.initStd), "torch_dtype": dtype == "BF16" ? "bfloat16" : "float32", "dtype": dtype == "BF16" ? "bfloat16" : "float32",
            "bos_token_id": NSNull(), "eos_token_id": NSNull(), "pad_token_id": NSNull(),
        ]
        return try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    }

    /// A safetensors file: 8-byte header length, JSON header (padded to 8 bytes), data.
    public static func safetensors(_ tensors: [(name: String, shape: [Int], values: [Float])], bf16: Bool, metadata: [String: String]) throws -> Data {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        let width = bf16 ? 2 : 4
        for t in tensors {
            let n = t.values.count * width
            header[t.name] = ["dtype": bf16 ? "BF16" : "F32", "shape": t.shape, "data_offsets": [offset, offset + n]]
            offset += n
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var data = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        for t in tensors {
            if bf16 {
                var h = [UInt16](repeating: 0, count: t.values.count)
                for i in 0..<h.count {  // round to nearest even
                    let b = t.values[i].bitPattern
                    h[i] = t.values[i].isNaN ? UInt16(b >> 16) | 0x40 : UInt16((b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
                }
                h.withUnsafeBytes { data.append(contentsOf: $0) }
            } else {
                t.values.withUnsafeBytes { data.append(contentsOf: $0) }
            }
        }
        return data
    }

    /// A safetensors file's `__metadata__` strings (nil when the file is missing or its header
    /// unreadable); only the header is parsed.
    public static func safetensorsMetadata(_ url: URL) -> [String: String]? {
        guard let data = try? FileIO.read(url, mapped: true), data.count >= 8 else { return nil }
        let n = data.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        guard n <= UInt64(min(data.count - 8, 100 << 20)),
              let header = (try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + Int(n))))) as? [String: Any] else { return nil }
        return header["__metadata__"] as? [String: String] ?? [:]
    }

    /// Reads a safetensors file's F32/BF16 tensors, checking every offset against the file.
    public static func readSafetensors(_ url: URL) throws -> [String: (shape: [Int], values: [Float])] {
        let data = try FileIO.read(url, mapped: true)
        func bad(_ why: String) -> IOError { IOError(path: url.path, problem: "\(why) — not a readable safetensors file") }
        guard data.count >= 8 else { throw bad("only \(data.count) bytes") }
        let n = data.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        guard n <= UInt64(min(data.count - 8, 100 << 20)) else { throw bad("header of \(n) bytes does not fit the file") }
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + Int(n)))) as? [String: Any] else { throw bad("unreadable header") }
        let base = 8 + Int(n)
        var out: [String: (shape: [Int], values: [Float])] = [:]
        for (name, v) in header where name != "__metadata__" {
            guard let d = v as? [String: Any], let dtype = d["dtype"] as? String, let shape = d["shape"] as? [Int],
                  let offs = d["data_offsets"] as? [Int], offs.count == 2 else { throw bad("tensor \(name) has no dtype/shape/data_offsets") }
            let width = dtype == "F32" ? 4 : dtype == "BF16" ? 2 : 0
            guard width > 0 else { throw bad("tensor \(name) is \(dtype); protomodel reads F32 and BF16") }
            guard shape.allSatisfy({ $0 >= 0 && $0 <= 1 << 24 }) else { throw bad("tensor \(name) has shape \(shape)") }
            // Overflow-checked: a crafted header must be refused, not trap.
            var count = 1
            for dim in shape {
                let (p, o) = count.multipliedReportingOverflow(by: dim)
                guard !o, p <= data.count else { throw bad("tensor \(name)'s shape \(shape) holds more values than the file has bytes") }
                count = p
            }
            guard offs[0] >= 0, offs[1] >= offs[0], offs[1] <= data.count - base,
                  offs[1] - offs[0] == count * width else {
                throw bad("tensor \(name)'s data \(offs) does not match its shape \(shape) or the file's size")
            }
            var values = [Float](repeating: 0, count: count)
            data.withUnsafeBytes { b in
                let p = b.baseAddress! + base + offs[0]
                if width == 4 { _ = values.withUnsafeMutableBytes { memcpy($0.baseAddress!, p, count * 4) } }
                else { for i in 0..<count { values[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) } }
            }
            out[name] = (shape, values)
        }
        return out
    }

    /// protomodel's chunking (Pretokenizer.swift) as the regex of a `tokenizers` Split:
    /// words with one leading space (letters are ASCII letters and every non-ASCII
    /// character), digit runs, punctuation runs, runs of line breaks and tabs, and space
    /// runs that leave their last space to the word after them.
    static let splitPattern = #" ?[A-Za-z\x{80}-\x{10FFFF}]+| ?[0-9]+| ?[^A-Za-z0-9 \t\n\x{0B}\x{0C}\r\x{80}-\x{10FFFF}]+|[\t\n\x{0B}\x{0C}\r]+| +(?= [^ \t\n\x{0B}\x{0C}\r])| +"#

    /// GPT-2's byte → printable character map used by byte-level BPE.
    static let byteToUnicode: [Character] = {
        var bs = Array(33...126) + Array(161...172) + Array(174...255)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) { bs.append(b); cs.append(256 + n); n += 1 }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(bs, cs) { table[b] = Character(Unicode.Scalar(c)!) }
        return table
    }()

    /// tokenizer.json (the `tokenizers` format) with protomodel's ids.
    public static func tokenizerJSON(_ tok: Tokenizer) throws -> Data {
        func str(_ bytes: [UInt8]) -> String { String(bytes.map { byteToUnicode[Int($0)] }) }
        var vocab: [String: Int] = [:]
        for t in 0..<tok.vocabSize {
            let s = str(tok.bytes(of: t))
            if let other = vocab[s] {
                throw IOError(path: "tokenizer", problem: "tokens \(other) and \(t) stand for the same bytes; the tokenizers format cannot hold that vocabulary")
            }
            vocab[s] = t
        }
        let merges = tok.merges.map { [str(tok.bytes(of: Int($0.0))), str(tok.bytes(of: Int($0.1)))] }
        let obj: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": [], "normalizer": NSNull(),
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": splitPattern], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false],
            ]],
            "post_processor": NSNull(),
            "decoder": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges],
        ]
        return try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
    }

    /// The files `export` writes (either form).
    public static let exportFileNames: Set<String> = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                                                      "tokenizer_config.json", "protomodel_tokenizer.json"]

    /// Refuses an output folder `export` must not write into: one holding a file export does
    /// not write, or export's file names without being an earlier export (its model.safetensors,
    /// written first, names protomodel as producer). A missing or empty folder is fine.
    /// Throws IOError naming the file and the fix.
    public static func checkExportFolder(_ dir: URL) throws {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
        guard !names.isEmpty else { return }
        let fix = "choose an empty or new --out"
        if let foreign = names.first(where: { !exportFileNames.contains($0) }) {
            throw IOError(path: dir.path, problem: "holds \(foreign), which export did not write; \(fix)")
        }
        guard safetensorsMetadata(dir.appendingPathComponent("model.safetensors"))?["producer"] == "protomodel" else {
            throw IOError(path: dir.path, problem: "holds \(names.joined(separator: ", ")) but is not an earlier protomodel export "
                          + "(\(names.contains("model.safetensors") ? "its model.safetensors was written by another program" : "no model.safetensors of protomodel's")); \(fix)")
        }
    }

    /// Writes the folder: config.json, generation_config.json, model.safetensors,
    /// tokenizer.json and tokenizer_config.json. With `raw`, protomodel's own tensors (W', U,
    /// E_S…) and its config go out instead, for protomodel alone.
    public static func export(_ model: StageModel, tokenizer: Tokenizer, to dir: URL, bf16: Bool, raw: Bool) throws {
        let c = model.config
        let tensors: [(name: String, shape: [Int], values: [Float])]
        if raw {
            tensors = model.layout.tensors.map { t in (t.name, t.shape, Array(UnsafeBufferPointer(start: model.params.ptr + t.offset, count: t.count))) }
        } else {
            tensors = try denseTensors(model)
        }
        let cfgJSON = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        let meta = ["format": "pt", "producer": "protomodel", "protomodel_layout": raw ? "raw" : "dense", "protomodel_config": cfgJSON]
        try AtomicFile.makeFolder(dir)
        try AtomicFile.write(try safetensors(tensors, bf16: bf16, metadata: meta), to: dir.appendingPathComponent("model.safetensors"))
        if !raw {
            try AtomicFile.write(try configJSON(c, dtype: bf16 ? "BF16" : "F32"), to: dir.appendingPathComponent("config.json"))
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: ["do_sample": true, "temperature": 0.8, "top_k": 40, "max_new_tokens": 200]),
                                 to: dir.appendingPathComponent("generation_config.json"))
        }
        try AtomicFile.write(try tokenizerJSON(tokenizer), to: dir.appendingPathComponent("tokenizer.json"))
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: ["tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": c.seqLen,
                                                                          "clean_up_tokenization_spaces": false]),
                             to: dir.appendingPathComponent("tokenizer_config.json"))
        try tokenizer.save(to: dir.appendingPathComponent("protomodel_tokenizer.json"))
    }

    /// Reads a folder written by `export` (either form) or any Arcee checkpoint whose shape
    /// protomodel supports, as a model config and whole-model parameters in ParamLayout order.
    /// Every unsupported field is named.
    public static func load(_ dir: URL) throws -> (config: ModelConfig, params: [Float]) {
        let stURL = dir.appendingPathComponent("model.safetensors")
        let tensors = try readSafetensors(stURL)
        // Raw exports carry protomodel's own config and tensors.
        let meta = safetensorsMetadata(stURL) ?? [:]
        if meta["protomodel_layout"] == "raw", let cj = meta["protomodel_config"] {
            let c = try JSONDecoder().decode(ModelConfig.self, from: Data(cj.utf8))
            try c.validate()
            let layout = ParamLayout(config: c, stage: .whole(c))
            var params = [Float](repeating: 0, count: layout.count)
            for t in layout.tensors {
                guard let v = tensors[t.name], v.shape == t.shape else {
                    throw IOError(path: stURL.path, problem: "raw export lacks \(t.name) of shape \(t.shape)")
                }
                params.replaceSubrange(t.offset..<(t.offset + t.count), with: v.values)
            }
            return (c, params)
        }
        let cfgURL = dir.appendingPathComponent("config.json")
        guard let j = (try? JSONSerialization.jsonObject(with: FileIO.read(cfgURL))) as? [String: Any] else {
            throw IOError(path: cfgURL.path, problem: "missing or not JSON — not a Hugging Face model folder")
        }
        var problems: [String] = []
        func int(_ k: String) -> Int? { (j[k] as? NSNumber)?.intValue }
        let type = j["model_type"] as? String ?? "?"
        if type != "arcee" { problems.append("model_type \(type) (protomodel reads arcee)") }
        if let a = j["hidden_act"] as? String, a != "relu2" { problems.append("hidden_act \(a) (protomodel's MLP is relu2)") }
        guard let V = int("vocab_size"), let C = int("hidden_size"), let H = int("intermediate_size"),
              let L = int("num_hidden_layers"), let NH = int("num_attention_heads") else {
            throw IOError(path: cfgURL.path, problem: "lacks vocab_size, hidden_size, intermediate_size, num_hidden_layers or num_attention_heads")
        }
        if let kv = int("num_key_value_heads"), kv != NH { problems.append("num_key_value_heads \(kv) ≠ num_attention_heads \(NH) (grouped-query attention)") }
        if let hd = int("head_dim"), hd * NH != C { problems.append("head_dim \(hd) × heads ≠ hidden_size") }
        if (j["attention_bias"] as? Bool) == true { problems.append("attention_bias (protomodel's attention has no biases)") }
        if (j["mlp_bias"] as? Bool) == true { problems.append("mlp_bias (protomodel's MLP has no biases)") }
        if (j["tie_word_embeddings"] as? Bool) == true { problems.append("tie_word_embeddings (protomodel's LM head is untied)") }
        var theta = 10000.0
        if let rp = j["rope_parameters"] as? [String: Any] {
            if let t = rp["rope_type"] as? String, t != "default" { problems.append("rope_type \(t) (rope scaling)") }
            theta = (rp["rope_theta"] as? NSNumber)?.doubleValue ?? theta
        }
        if let rs = j["rope_scaling"], !(rs is NSNull) { problems.append("rope_scaling") }
        if let t = j["rope_theta"] as? NSNumber { theta = t.doubleValue }
        guard problems.isEmpty else {
            throw IOError(path: cfgURL.path, problem: "unsupported by protomodel: " + problems.joined(separator: "; "))
        }
        var c = ModelConfig(vocabSize: V, seqLen: int("max_position_embeddings") ?? 256, nLayer: L, nHead: NH, dModel: C, mlpHidden: H)
        c.ropeBase = Float(theta)
        c.normEps = Float((j["rms_norm_eps"] as? NSNumber)?.doubleValue ?? 1e-5)
        try c.validate()
        let layout = ParamLayout(config: c, stage: .whole(c))
        var params = [Float](repeating: 0, count: layout.count)
        func take(_ name: String, _ shape: [Int]) throws -> [Float] {
            guard let t = tensors[name] else { throw IOError(path: stURL.path, problem: "has no tensor \(name)") }
            guard t.shape == shape else { throw IOError(path: stURL.path, problem: "\(name) has shape \(t.shape), the config says \(shape)") }
            return t.values
        }
        func put(_ pname: String, _ values: [Float]) { let t = layout.tensor(pname)!; params.replaceSubrange(t.offset..<(t.offset + t.count), with: values) }
        func putT(_ pname: String, _ w: [Float], out: Int, inp: Int) {  // (out, in) → (in, out)
            var v = [Float](repeating: 0, count: out * inp)
            for o in 0..<out { for i in 0..<inp { v[i * out + o] = w[o * inp + i] } }
            put(pname, v)
        }
        put("wte", try take("model.embed_tokens.weight", [V, C]))
        for l in 0..<L {
            let pre = "model.layers.\(l)."
            var qkv = [Float](repeating: 0, count: C * 3 * C)
            for (k, name) in ["q_proj", "k_proj", "v_proj"].enumerated() {
                let w = try take(pre + "self_attn.\(name).weight", [C, C])
                for o in 0..<C { for i in 0..<C { qkv[i * 3 * C + k * C + o] = w[o * C + i] } }
            }
            put("h\(l).qkv", qkv)
            putT("h\(l).attn_proj", try take(pre + "self_attn.o_proj.weight", [C, C]), out: C, inp: C)
            putT("h\(l).fc", try take(pre + "mlp.up_proj.weight", [H, C]), out: H, inp: C)
            putT("h\(l).fc_proj", try take(pre + "mlp.down_proj.weight", [C, H]), out: C, inp: H)
            put("h\(l).ln1", try take(pre + "input_layernorm.weight", [C]))
            put("h\(l).ln2", try take(pre + "post_attention_layernorm.weight", [C]))
        }
        put("lnf", try take("model.norm.weight", [C]))
        putT("lm_head", try take("lm_head.weight", [V, C]), out: V, inp: C)
        return (c, params)
    }
}

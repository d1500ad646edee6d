// `protomodel sample`: generate text from a trained model.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoData

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a trained model (single process).")

    @Option(name: .customLong("run"), help: "Run folder written by `protomodel train` (model.bin, tokenizer.json).") var runDir: String = "runs/latest"
    @Option(help: "Text to continue.") var prompt: String = "And God said"
    @Option(help: "Tokens to generate.") var tokens: Int = 200
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Sample among the k most likely tokens (0 = all).") var topK: Int = 40
    @Option(help: "Sampling seed.") var seed: UInt64 = 1

    mutating func validate() throws {
        if tokens < 1 { throw ValidationError("--tokens must be at least 1") }
        if !(temperature >= 0 && temperature.isFinite) { throw ValidationError("--temperature \(temperature) must be a number ≥ 0") }
        if tokens > 1 << 20 { throw ValidationError("--tokens \(tokens) must be at most \(1 << 20)") }
        if topK < 0 { throw ValidationError("--top-k must be ≥ 0") }
    }

    func run() throws {
        let dir = URL(fileURLWithPath: runDir)
        let model = try ModelFile.load(dir.appendingPathComponent("model.bin"))
        let tok = try Tokenizer.load(from: dir.appendingPathComponent("tokenizer.json"))
        guard tok.vocabSize == model.config.vocabSize else {
            throw CLIError("\(runDir)/tokenizer.json has \(tok.vocabSize) tokens but the model expects \(model.config.vocabSize); the two files come from different runs")
        }
        let ids = tok.encode(prompt).map { Int32($0) }
        // The text appears as it is generated: each token's bytes go out once they end a whole
        // UTF-8 character (a character may span tokens).
        var pending: [UInt8] = []
        func emit(_ bytes: [UInt8]) { FileHandle.standardOutput.write(Data(String(decoding: bytes, as: UTF8.self).utf8)) }
        emit(Array(prompt.utf8))
        _ = Sampler.generate(model, prompt: ids, count: tokens,
                             config: SamplingConfig(temperature: temperature, topK: topK, seed: seed)) { t in
            pending += tok.decode([UInt16(t)])
            let whole = Tokenizer.completeUTF8Prefix(pending)
            if whole > 0 { emit(Array(pending[..<whole])); pending.removeFirst(whole) }
        }
        emit(pending + [0x0A])
    }
}

// `protomodel converge`: the convergence benchmark. Every variant trains on the same data
// order and seed for the same tokens (in-process pipeline, one thread per stage) and is
// scored on a fixed validation slice; writes Markdown/CSV/JSON and a Pareto plot. Each
// finished variant is kept in OUT/runs/, so an interrupted benchmark restarts where it stopped.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoData
import ProtoPipeline
import ProtoReport

enum ValidationSlice: String, CaseIterable, ExpressibleByArgument {
    /// The slice reported in tables (validation micro-batches 0..<n).
    case report
    /// The next n micro-batches: for choosing settings without touching the reported slice.
    case tune
}

struct Converge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convergence benchmark: validation loss at equal tokens for a list of codecs and model variants.",
        discussion: """
        Trains each variant in one process on the pipeline it would run on (one thread per \
        stage, the MPI pipeline's exact arithmetic), on the same data order and seed, and \
        scores it on a fixed validation slice of at least --val-tokens tokens. Variants use \
        the codec words of `bench` (\(CodecSpec.syntax)), each optionally followed by model \
        levers: \(Variant.leverSyntax).
        Reports bytes/token each way, compression against dense fp32 and bf16, validation loss \
        at intervals, the gap to dense, and the steps dense needed to reach each final loss.
        Choose settings with --val-slice tune; report with the default slice.
        """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var options: TrainOptions
    @OptionGroup var threading: ThreadOptions
    @Option(help: "Comma-separated variants (codec words); plain `dense` is the reference (else the first dense variant, e.g. dense+norm).")
    var variants: String = "dense,int8,subspace:16"
    @Option(help: "Pipeline stages the model is split into (boundaries = stages − 1).") var stages: Int = 8
    @Option(help: "Layers per stage, comma separated (default: as even as possible).") var split: String?
    @Option(help: "Pipeline schedule.") var schedule: ScheduleKind = .oneFOneB
    @Option(name: .customLong("val-tokens"), help: "Validation tokens scored each time (rounded up to whole groups of M micro-batches).")
    var valTokens: Int = 32768
    @Option(name: .customLong("val-slice"), help: "report: the slice tables report; tune: the next slice of the same size, for choosing settings.")
    var valSlice: ValidationSlice = .report
    @Option(name: .customLong("bench-out"), help: "Folder for results.{md,csv,json}, pareto.svg, curves.svg and runs/ (one JSON per finished variant).")
    var benchOut: String = "bench/convergence"
    @Flag(help: "Retrain variants whose results are already in BENCH_OUT/runs/ (by default they are reused).")
    var fresh = false
    @Flag(name: .customLong("stored-only"), help: "Train nothing: rewrite the tables and plots from the runs in BENCH_OUT/runs/ (a variant without a stored run of the same settings is an error, named).")
    var storedOnly = false
    @Option(help: "Comma-separated initialisation seeds, e.g. 1337,2,3: the benchmark runs once per seed (results in BENCH_OUT/seed-S/) and writes BENCH_OUT/seeds.{md,json}, each variant's gap to dense as the mean ± sd of its per-seed gaps. Without it: one run per variant from --seed, results in BENCH_OUT; not together with --seed.")
    var seeds: String?

    mutating func validate() throws {
        if stages < 1 { throw ValidationError("--stages \(stages) must be at least 1") }
        if options.outFolder != nil || options.log != nil {
            throw ValidationError("converge writes its tables, plots and runs into --bench-out; --out and --log belong to train")
        }
        if fresh && storedOnly { throw ValidationError("--fresh retrains and --stored-only trains nothing: give one of them") }
        if valTokens < 1 { throw ValidationError("--val-tokens \(valTokens) must be at least 1") }
        let variants = try specs()
        if try seedList() != nil {
            if Variant.referenceIndex(variants) == nil {
                throw ValidationError("--seeds reports each variant's gap to dense from the same seed; add dense to --variants")
            }
            if let seed = model.seed {
                throw ValidationError("--seed \(seed) and --seeds together: --seeds sets the seed of every run; drop --seed (or add \(seed) to the --seeds list)")
            }
        }
    }

    func seedList() throws -> [UInt64]? {
        guard let seeds else { return nil }
        let parts = seeds.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap { UInt64($0) }
        guard !parts.isEmpty, values.count == parts.count, Set(values).count == values.count else {
            throw ValidationError("--seeds '\(seeds)' must be distinct whole numbers separated by commas, e.g. 1337,2,3")
        }
        return values
    }

    func specs() throws -> [Variant] {
        let words = variants.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !words.isEmpty else { throw ValidationError("--variants is empty; give e.g. dense,int8,subspace:16") }
        let variants: [Variant]
        do { variants = try words.map(Variant.parse) } catch { throw ValidationError("--variants: \(error)") }
        // The same variant twice (also spelled two ways) would be one run listed twice.
        var seen: Set<String> = []
        for v in variants where !seen.insert(v.description).inserted {
            throw ValidationError("--variants names \(v.description) twice; give each variant once")
        }
        return variants
    }

    func run() throws {
        try threading.apply()
        let tc = try options.trainConfig(steps: 600, batchSize: 4, microbatches: 8)
        var cfg = try model.config()
        let dir = URL(fileURLWithPath: options.data)
        try PreparedData.check(options.data)
        let tokenizer = try Tokenizer.load(from: dir.appendingPathComponent("tokenizer.json"))
        cfg.vocabSize = tokenizer.vocabSize
        try cfg.validate()
        let layers: [Int]
        if let split {
            let parts = split.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.allSatisfy({ $0 != nil }), parts.count == stages else {
                throw ValidationError("--split '\(split)' must give \(stages) comma-separated layer counts (one per stage)")
            }
            layers = parts.map { $0! }
            _ = try StageSpec.stages(split: layers, nLayer: cfg.nLayer)
        } else {
            layers = try StageSpec.evenSplit(nLayer: cfg.nLayer, stages: stages)
        }
        let specs = try specs()
        for s in specs { _ = try s.config(cfg, split: layers) }

        // Data: the same training order for every variant, a fixed validation slice.
        let trainShards = try Shard.list(in: dir, split: "train")
        let perGroup = tc.microbatches * tc.batchSize * cfg.seqLen
        let valCount = (valTokens + perGroup - 1) / perGroup * tc.microbatches
        let valLoader = try DataLoader(shards: Shard.list(in: dir, split: "val"), vocabSize: cfg.vocabSize,
                                       seqLen: cfg.seqLen, batchSize: tc.batchSize, seed: 0, shuffle: false)
        let val = valLoader.fixedBatches(valCount, skip: valSlice == .tune ? valCount : 0)
        guard val.count == valCount else {
            throw CLIError("\(options.data) has validation data for \(valLoader.windowCount / tc.batchSize) micro-batches of \(tc.batchSize)×\(cfg.seqLen + 1) tokens; the \(valSlice.rawValue) slice needs \(valCount)\(valSlice == .tune ? " after the report slice" : "") — lower --val-tokens or prepare more data")
        }
        let evalEvery = options.evalEvery ?? max(1, tc.steps / 12)
        let dataID = try trainShards.map { "\($0.lastPathComponent):\(try FileManager.default.attributesOfItem(atPath: $0.path)[.size] ?? 0)" }
            .joined(separator: ",") + "|tok:" + Digest.sha256(try FileIO.read(dir.appendingPathComponent("tokenizer.json")))

        let caption = "d=\(cfg.dModel) L=\(cfg.nLayer) NH=\(cfg.nHead) T=\(cfg.seqLen) V=\(cfg.vocabSize), \(stages) stages (\(layers.map(String.init).joined(separator: ","))), \(tc.steps) steps × \(perGroup) tokens, val \(val.count * tc.batchSize * cfg.seqLen) tokens (\(valSlice.rawValue) slice), in-process pipeline\(threading.matmul == .bf16 ? ", products in \(MatmulPrecision.current.label) (--matmul bf16)" : "")"
        let root = URL(fileURLWithPath: benchOut)
        guard let seeds = try seedList() else {
            _ = try runSeed(cfg, out: root, specs: specs, tc: tc, layers: layers, trainShards: trainShards, dataID: dataID,
                            val: val, evalEvery: evalEvery, caption: caption)
            return
        }
        var perSeed: [(seed: UInt64, rows: [ConvergenceRow])] = []
        for (i, seed) in seeds.enumerated() {
            var c = cfg
            c.seed = seed
            print("seed \(seed) (\(i + 1)/\(seeds.count))")
            perSeed.append((seed, try runSeed(c, out: root.appendingPathComponent("seed-\(seed)"), specs: specs, tc: tc, layers: layers,
                                               trainShards: trainShards, dataID: dataID, val: val, evalEvery: evalEvery, caption: caption)))
        }
        let summary = SeedSummary.rows(perSeed)
        let notes = [
            "model: " + caption,
            "seeds (initial weights): \(seeds.map(String.init).joined(separator: ", ")); data order seed \(tc.dataSeed) for every run; per-seed tables in seed-S/",
            "gap: (variant − dense) / dense at the same seed, in percent; mean and sample sd over the seeds",
            "git \(RunInfo.gitRevision), \(RunInfo.host)",
        ]
        try AtomicFile.write(Data(("# protomodel converge over seeds\n\n" + SeedSummary.markdown(summary, notes: notes)).utf8),
                             to: root.appendingPathComponent("seeds.md"))
        try AtomicFile.write(SeedSummary.json(summary, notes: notes), to: root.appendingPathComponent("seeds.json"))
        print("")
        print(SeedSummary.markdown(summary, notes: []))
        print("wrote \(benchOut)/seeds.{md,json} and one folder per seed")
    }

    /// Trains (or reuses) every variant from `cfg.seed` and writes the tables and plots into `out`.
    func runSeed(_ cfg: ModelConfig, out: URL, specs: [Variant], tc: TrainConfig, layers: [Int], trainShards: [URL],
                 dataID: String, val: [Microbatch], evalEvery: Int, caption: String) throws -> [ConvergenceRow] {
        let runsDir = out.appendingPathComponent("runs")
        if storedOnly {
            guard FileManager.default.fileExists(atPath: runsDir.path) else {
                throw CLIError("--stored-only: \(runsDir.path) does not exist (no stored runs there); check --bench-out\(cfg.seed != 1337 ? " and --seeds" : "")")
            }
        } else {
            try AtomicFile.makeFolder(runsDir)
        }
        print("converge    \(specs.count) variant(s): \(caption)")
        print("            results in \(out.path)/ (finished variants are kept in runs/ and reused; --fresh retrains)")

        var results: [ConvergenceResult] = []
        var used: Set<String> = []
        for (i, variant) in specs.enumerated() {
            let vcfg = try variant.config(cfg, split: layers)
            let spec = variant.spec
            let label = try variant.label(cfg, split: layers)
            // Settings as sorted-key JSON: a new optional setting left unset changes no fingerprint.
            let keyed = JSONEncoder(); keyed.outputFormatting = [.sortedKeys]
            let settings = String(decoding: try keyed.encode(vcfg), as: UTF8.self) + String(decoding: try keyed.encode(tc), as: UTF8.self)
            let parts = [settings, "\(layers)", schedule.rawValue, variant.description, dataID, valSlice.rawValue,
                         "\(val.count)", "\(evalEvery)"] + threading.settingWords
            let fp = String(Digest.sha256(Data(parts.joined(separator: "|").utf8)).prefix(16))
            let file = runsDir.appendingPathComponent(variant.description.replacingOccurrences(of: ":", with: "_").replacingOccurrences(of: "+", with: "_") + ".json")
            used.insert(file.lastPathComponent)
            let stored = fresh ? nil : try? Data(contentsOf: file)
            let old = stored.flatMap { try? ConvergenceResult.jsonDecoder().decode(ConvergenceResult.self, from: $0) }
            if stored != nil && old == nil {
                if storedOnly { throw CLIError("--stored-only: \(file.path) is not a readable run (damaged or from another protomodel); run without --stored-only to retrain it") }
                print("[\(i + 1)/\(specs.count)] \(label): \(file.path) is not a readable run (damaged?); retraining replaces it")
            }
            if let old {
                if old.fingerprint == fp {
                    print(String(format: "[%d/%d] %@: reused %@ (val %.4f)", i + 1, specs.count, label, file.path, old.finalValidation ?? .nan))
                    results.append(old)
                    continue
                }
                if storedOnly {
                    throw CLIError("--stored-only: \(file.path) holds a run of \(label) made with other settings (model, data, steps, validation or --matmul); run without --stored-only to retrain it")
                }
                print("[\(i + 1)/\(specs.count)] \(label): \(file.path) was made with other settings; retraining")
            }
            if storedOnly {
                throw CLIError("--stored-only: no stored run of \(label) (\(file.path)); run without --stored-only to train it")
            }
            print("[\(i + 1)/\(specs.count)] \(label): training \(tc.steps) steps")
            let loader = try DataLoader(shards: trainShards, vocabSize: cfg.vocabSize, seqLen: cfg.seqLen,
                                        batchSize: tc.batchSize, seed: tc.dataSeed, shuffle: true)
            let r = try Convergence.run(label: label, config: vcfg, spec: spec, train: tc, split: layers, schedule: schedule,
                                        fingerprint: fp, nextStep: { (0..<tc.microbatches).map { _ in loader.next() } },
                                        validation: val, evalEvery: evalEvery) { p in
                guard let v = p.validation else { return }
                let eta = p.elapsed / Double(p.step) * Double(p.steps - p.step)
                print(String(format: "      step %5d/%d | loss %.4f | val %.4f | %@ elapsed, ETA %@",
                             p.step, p.steps, p.trainLoss, v, formatDuration(p.elapsed), formatDuration(eta)))
            }
            let enc = ConvergenceResult.jsonEncoder()
            try AtomicFile.write(enc.encode(r), to: file)
            results.append(r)
        }

        let dense = Variant.referenceIndex(specs).map { results[$0].label }
        let n = Double(tc.batchSize * cfg.seqLen), header = Double(WireBuffer.headerBytes)
        let rows = ConvergenceReport.rows(results, dense: dense, fp32Bytes: (4 * n * Double(cfg.dModel) + header) / n,
                                          bf16Bytes: (2 * n * Double(cfg.dModel) + header) / n)
        let notes = [
            "model: " + caption,
            "path: in-process pipeline (every stage a thread, the MPI pipeline's arithmetic); same data order (seed \(tc.dataSeed)) and initial weights (seed \(cfg.seed)) for every variant",
            "bytes: per token per boundary as encoded (payload + 16-byte header); compression counts forward + backward + sync against dense fp32 / bf16 messages",
            "steps ratio: \(tc.steps) / steps dense needed to reach the variant's final loss (interpolated between validation points every \(evalEvery) steps)",
            "git \(RunInfo.gitRevision), \(RunInfo.host)",
        ]
        try AtomicFile.write(Data(("# protomodel converge\n\n" + ConvergenceReport.markdown(rows, notes: notes)).utf8), to: out.appendingPathComponent("results.md"))
        try AtomicFile.write(Data(ConvergenceReport.csv(rows).utf8), to: out.appendingPathComponent("results.csv"))
        try AtomicFile.write(ConvergenceReport.json(rows, notes: notes), to: out.appendingPathComponent("results.json"))
        try AtomicFile.write(Data(ConvergenceReport.paretoPlot(rows, dense: dense, caption: caption).render().utf8), to: out.appendingPathComponent("pareto.svg"))
        try AtomicFile.write(Data(ConvergenceReport.curvesPlot(rows, dense: dense, caption: caption).render().utf8), to: out.appendingPathComponent("curves.svg"))
        print("")
        print(ConvergenceReport.markdown(rows, notes: []))
        print("wrote \(out.path)/results.{md,csv,json}, pareto.svg, curves.svg")
        // The tables hold the variants asked for; say when runs/ keeps others they no longer show.
        let others = ((try? FileManager.default.contentsOfDirectory(atPath: runsDir.path)) ?? [])
            .filter { $0.hasSuffix(".json") && !used.contains($0) }.sorted()
        if !others.isEmpty {
            print("note        these tables list the \(specs.count) variant(s) asked for; runs/ keeps \(others.count) more "
                  + "(\(others.map { String($0.dropLast(5)) }.joined(separator: ", "))): name them in --variants to list them again (reused, not retrained)")
        }
        return rows
    }
}

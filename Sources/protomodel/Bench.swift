// `protomodel bench`: the same model, data and seed with a list of codecs over a list of
// emulated links, in one mpirun invocation; writes a table (Markdown, CSV, JSON) and plots.
import ArgumentParser
import Foundation
import ProtoCore
import ProtoMPI
import ProtoPipeline
import ProtoReport
import ProtoTrain

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare wire codecs over emulated links: steady step time, bytes/token, loss and the speedrun score T.",
        discussion: """
        Run under mpirun, one rank per stage, e.g.
          mpirun -np 8 protomodel bench --codecs dense,subspace:16 --links off,80mbit,200mbit:50ms --steps 300
        With the virtual clock every codec trains once and follows every link at the same time \
        (the runs differ only in timing); with the sleep clock each (codec, link) pair trains \
        on its own. Codecs: \(CodecSpec.syntax); each may add model levers: \(Variant.leverSyntax).
        """)

    @OptionGroup var model: ModelOptions
    @OptionGroup var options: TrainOptions
    @OptionGroup var pipeline: PipelineOptions
    @OptionGroup var threading: ThreadOptions
    @Option(help: "Comma-separated codecs to compare.") var codecs: String = "dense,subspace"
    @Option(help: "Comma-separated emulated links (off, presets, BANDWIDTH[:LATENCY]).") var links: String = "off,80mbit,200mbit:50ms"
    @Option(name: .customLong("bench-out"), help: "Folder for results.md, results.csv, results.json and the SVG plots.")
    var benchOut: String = "bench/latest"
    @Option(name: .customLong("target-loss"), help: "Validation loss for the speedrun score T (default: the best loss reached by the worst codec among those whose best is within 20% of the best codec's).")
    var targetLoss: Double?
    @Option(name: .customLong("steady-window"), help: "Steps per window of the steady-state rule.") var steadyWindow: Int = 10
    @Option(name: .customLong("steady-tolerance"), help: "Three consecutive windows within this relative spread mark the steady state.")
    var steadyTolerance: Double = 0.01
    @Option(help: ArgumentHelp("Append a published reference table to the results (speedrun).", visibility: .hidden))
    var reference: String?

    @Option(help: ArgumentHelp("Draw the plots of an earlier run again from DIR/results.json (into DIR), without training.", valueName: "DIR"))
    var replot: String?

    mutating func validate() throws {
        if options.outFolder != nil { throw ValidationError("bench writes its results into --bench-out (and --log); --out belongs to train") }
    }

    func run() throws {
        if let dir = replot {
            let url = URL(fileURLWithPath: dir)
            let (runs, target, caption) = try BenchReport.runs(fromJSON: FileIO.read(url.appendingPathComponent("results.json")))
            let rows = BenchReport.rows(runs, tokensPerStep: 1, target: target, window: steadyWindow, tolerance: steadyTolerance)
            let plots = try BenchReport.writePlots(runs, rows: rows, target: target, caption: caption, to: url)
            print("wrote \(dir)/\(plots.joined(separator: ", "))")
            return
        }
        try runRanks(recvTimeout: pipeline.recvTimeout) { try bench($0) }
    }

    private func parseLists() throws -> ([Variant], [LinkModel]) {
        let cs = try codecs.split(separator: ",").map { try Variant.parse(String($0).trimmingCharacters(in: .whitespaces)) }
        let ls = try links.split(separator: ",").map { try LinkModel.parse(String($0)) }
        guard !cs.isEmpty else { throw ValidationError("--codecs is empty; give e.g. dense,subspace:16") }
        guard !ls.isEmpty else { throw ValidationError("--links is empty; give e.g. off,80mbit,200mbit:50ms") }
        guard steadyWindow >= 1, steadyTolerance > 0 else { throw ValidationError("--steady-window must be ≥ 1 and --steady-tolerance > 0") }
        return (cs, ls)
    }

    private func bench(_ link: MPILink) throws {
        let rank = link.rank, size = link.size
        let (choices, linkModels) = try agreedCheck(rank: rank) { try parseLists() }
        let settings = try agreedCheck(rank: rank) { () -> RunSettings in
            try threading.apply()
            return try runSettings(model: model, options: options, pipeline: pipeline, threading: threading, extra: [codecs, links])
        }
        let session = try TrainingRun(link: link, settings: settings, localRanks: MPIEnv.localSize,
                                      cores: ProcessInfo.processInfo.activeProcessorCount) { cfg, split in
            for c in choices { _ = try c.config(cfg, split: split) }
        }
        let tc = session.tc
        let evalEvery = options.evalEvery ?? 20
        // Virtual: one run per codec follows every link. Sleep: one run per (codec, link).
        let plan: [(Variant, [LinkModel])] = session.clock == .virtual
            ? choices.map { ($0, linkModels) }
            : choices.flatMap { c in linkModels.map { (c, [$0]) } }
        let log = rank == 0 ? try options.log.map { try JSONLWriter(path: $0) } : nil
        if rank == 0 {
            print("bench       \(choices.count) codec(s) × \(linkModels.count) link(s), \(plan.count) training run(s) of \(tc.steps) steps, \(size) stage(s), \(session.clock.rawValue) clock")
            try log?.write(BenchConfigRecord(model: session.base, train: tc, versions: RunInfo.versions(mpi: MPIEnv.libraryVersion),
                                             host: RunInfo.host, git: RunInfo.gitRevision, worldSize: size, split: session.split,
                                             codecs: codecs, links: links, clock: session.clock.rawValue))
        }
        // Results grouped by link (in --links order); within a link, codecs in --codecs order.
        var byLink = Array(repeating: [BenchRun](), count: linkModels.count)
        let wallStart = Clock.wall()
        for (i, (choice, ls)) in plan.enumerated() {
            let (trainer, cfg) = try session.makeTrainer(variant: choice, links: ls)
            let label = try choice.label(session.base, split: session.split)
            if rank == 0 { print("run \(i + 1)/\(plan.count)   \(label) over \(ls.map(\.name).joined(separator: ", "))") }
            var times = Array(repeating: [Double](), count: ls.count)
            var linkShares = times, bubbleShares = times
            var vals: [(step: Int, loss: Double)] = []
            var bytesF = 0.0, bytesB = 0.0, bytesR = 0.0, lastLoss = 0.0
            let (perBoundary, denseBytes) = session.wireBaseline(cfg)
            try session.run(trainer, steps: tc.steps, evalEvery: evalEvery) { step, r, val in
                for (j, e) in r.emulated.enumerated() {
                    times[j].append(e.stepSeconds); linkShares[j].append(e.linkWaitShare); bubbleShares[j].append(e.bubbleShare)
                }
                bytesF = r.bytesForward; bytesB = r.bytesBackward; bytesR = r.bytesReplica; lastLoss = Double(r.loss)
                if let val { vals.append((step + 1, Double(val))) }
                if (step + 1) % 25 == 0 || step + 1 == tc.steps {
                    let emu = r.emulated.map { String(format: "%@ %.0f ms", $0.link.name, $0.stepSeconds * 1000) }.joined(separator: ", ")
                    print(String(format: "  step %4d/%d | loss %.4f | wall %.0f ms | emulated: %@", step + 1, tc.steps, r.loss, r.stepSeconds * 1000, emu)
                          + (val.map { String(format: " | val %.4f", $0) } ?? ""))
                }
                try log?.write(BenchStepRecord(codec: label, step: step + 1, report: r, val: val))
            }
            if rank == 0 {
                for (j, l) in ls.enumerated() {
                    byLink[linkModels.firstIndex(of: l)!].append(BenchRun(codec: label, link: l, clock: session.clock,
                                         bytesPerTokenForward: bytesF / perBoundary, bytesPerTokenBackward: bytesB / perBoundary,
                                         compression: bytesF > 0 ? denseBytes / bytesF : 1, stepSeconds: times[j],
                                         linkWaitShares: linkShares[j], bubbleShares: bubbleShares[j],
                                         validation: vals, finalTrainLoss: lastLoss, replicaBytesPerStep: bytesR))
                }
            }
        }
        guard rank == 0 else { return }
        let runs = byLink.flatMap { $0 }
        let target = targetLoss ?? BenchReport.defaultTarget(runs)
        let rows = BenchReport.rows(runs, tokensPerStep: session.tokensPerStep, target: target,
                                    window: steadyWindow, tolerance: steadyTolerance)
        let cfg = session.base
        let notes = [
            "model: d=\(cfg.dModel) L=\(cfg.nLayer) NH=\(cfg.nHead) T=\(cfg.seqLen) V=\(cfg.vocabSize), \(size) stages (split \(session.split.map(String.init).joined(separator: ","))), \(pipeline.schedule.rawValue)",
            "run: \(tc.steps) steps × \(session.tokensPerStep) tokens (B=\(tc.batchSize), M=\(tc.microbatches)), lr \(tc.schedule.maxLR), data \(options.data), validation every \(evalEvery) steps",
            "clock: \(session.clock.rawValue) (\(session.clock == .virtual ? "per-rank clocks from thread CPU time and the link model" : "real sleeps on the wall clock")), link model \(session.settings.linkKind.rawValue), stage speed \(session.stageSpeed)" + (session.stageSpeed == .native ? "" : String(format: " (this core %.0f GFLOP/s: compute × %.4g)", session.coreFlops / 1e9, session.computeScale)),
            "target validation loss for T: " + (target.map { String(format: "%.4f", $0) } ?? "none") + (targetLoss == nil ? " (the best loss reached by the worst codec among those within 20% of the best codec)" : ""),
            "steady state: three consecutive \(steadyWindow)-step windows within \(steadyTolerance * 100)%",
            "git \(RunInfo.gitRevision), \(RunInfo.host), \(MPIEnv.libraryVersion), total wall time \(formatDuration(Clock.wall() - wallStart))",
        ]
        let out = URL(fileURLWithPath: benchOut)
        try AtomicFile.makeFolder(out)
        var md = "# protomodel bench\n\n" + BenchReport.markdown(rows, notes: notes)
        if reference == "speedrun" { md += "\n" + Speedrun.referenceTable }
        try AtomicFile.write(Data(md.utf8), to: out.appendingPathComponent("results.md"))
        try AtomicFile.write(Data(BenchReport.csv(rows).utf8), to: out.appendingPathComponent("results.csv"))
        let caption = "d=\(cfg.dModel) L=\(cfg.nLayer), \(size) stages, B=\(tc.batchSize) M=\(tc.microbatches) T=\(cfg.seqLen), \(session.clock.rawValue) clock, \(session.settings.linkKind.rawValue) links, stages at \(session.stageSpeed)"
        try AtomicFile.write(BenchReport.json(rows, meta: ["notes": notes, "target_loss": target as Any, "caption": caption]),
                             to: out.appendingPathComponent("results.json"))
        let plots = try BenchReport.writePlots(runs, rows: rows, target: target, caption: caption, to: out)
        print("")
        print(BenchReport.markdown(rows, notes: []))
        if reference == "speedrun" { print(Speedrun.referenceTable) }
        print("wrote \(benchOut)/results.{md,csv,json} and \(plots.joined(separator: ", "))")
    }
}

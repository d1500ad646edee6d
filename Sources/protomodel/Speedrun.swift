// `protomodel speedrun`: the benchmark in the regime the method is for — the shape of the
// Protocol NanoGPT speedrun (8 stages of one block, 200 Mbit/s + 50 ms) scaled to this
// machine: a model and micro-batch whose dense boundary messages are bandwidth-bound on
// that link, stages charged at a consumer GPU's speed on the virtual clock, a fixed target
// loss, and the reference's table beside ours.
import ArgumentParser
import Foundation

struct Speedrun: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The speedrun preset of `bench`: 8 stages × 1 block, bandwidth-bound dense messages at 200 Mbit/s + 50 ms, stages at a consumer GPU's speed.",
        discussion: """
        Run under mpirun with 8 ranks: mpirun -np 8 protomodel speedrun [--quick]. It is `protomodel bench` with \
        --preset medium (d=256, 8 layers, 8 heads, T=256) --batch-size 8 --microbatches 8 (a dense boundary \
        message is 2.1 MB: 84 ms at 200 Mbit/s, against 50 ms of latency) --clock virtual --stage-speed \
        30tflops (a consumer GPU's effective rate) over the reference's link (200mbit:50ms) and 20mbit, 80mbit and \
        1gbit at the same 50 ms, 80mbit and 1gbit without latency, and 100gbit (datacenter), with a fixed target loss. --quick is a short form for CI.
        """)

    @Flag(help: "A short run for CI (12 steps, B=4): the whole path end to end; its figures are no result.") var quick = false
    @Option(help: "Comma-separated codecs (codec words with levers).")
    var codecs: String = "dense,int8,subspace:32:int8+efixed=2+norm,subspace:16:int8+efixed=2+norm"
    @Option(name: .customLong("stage-speed"), help: "Emulated stage speed.") var stageSpeed: String = "30tflops"
    @Option(name: .customLong("target-loss"), help: "Validation loss for T (fixed in advance: dense's loss at 3/4 of the d=256 convergence run, bench/convergence-d256).") var targetLoss: Double = 2.8
    @Option(help: "Optimizer steps (default 240; --quick: 12).") var steps: Int?
    @Option(name: .customLong("bench-out"), help: "Folder for the results.") var benchOut: String = "bench/speedrun"
    @Option(help: "Data folder.") var data: String = "data/kjv"

    /// The reference's link at four bandwidths (50 ms), the paper's 80 Mbit/s and 1 Gbit/s
    /// without latency, and a datacenter link: the virtual clocks follow them all in one run.
    static let links = "20mbit:50ms,80mbit:50ms,200mbit:50ms,1gbit:50ms,80mbit,1gbit,100gbit"

    /// The published rows (SPEC §7), for the reader to set ours beside.
    static let referenceTable = """
    Reference (Protocol NanoGPT speedrun, 8 × H100, d=1024, 203.8M params, FineWeb, 200 Mbit/s + 50 ms per boundary):

    | codec | bytes/token | step (s) | steps to 3.276 | T (s) | T vs dense |
    |---|---|---|---|---|---|
    | dense bf16 | 2048 | 100.5 | 2925 | 293,889 | 1.00× |
    | ReparamSSN k=160 | 322 | 19.9 | 9125 | 181,487 | 1.62× |

    """

    func run() throws {
        let n = steps ?? (quick ? 12 : 240)
        var args = ["--preset", "medium", "--batch-size", quick ? "4" : "8", "--microbatches", "8", "--steps", "\(n)",
                    "--clock", "virtual", "--stage-speed", stageSpeed, "--codecs", codecs,
                    "--links", Self.links, "--eval-every", quick ? "6" : "10", "--eval-batches", "8",
                    "--data", data, "--bench-out", benchOut, "--reference", "speedrun"]
        if !quick { args += ["--target-loss", "\(targetLoss)"] }
        let bench = try Bench.parse(args)
        try bench.run()
    }
}

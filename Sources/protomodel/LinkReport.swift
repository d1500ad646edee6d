// `protomodel link-report`: the emulator-vs-real-link table and plot from the run logs that
// scripts/link_check.sh leaves (ProtoReport/LinkValidationReport.swift does the work).
import ArgumentParser
import Foundation
import ProtoReport
import ProtoCore

struct LinkReport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link-report",
        abstract: "Emulated vs real link step times from scripts/link_check.sh's run logs: results.md and emulator_vs_real.svg.")

    @Argument(help: "Folder of run logs named CODEC__Nh__emu|real__LINK.jsonl.") var runs: String
    @Option(help: "Folder for results.md and the plot (default: the runs folder's parent).") var out: String?
    @Option(help: "Start-up steps left out of each median.") var skip: Int = 4
    @Option(help: "Text above the table (what was run, on which commit).") var note: String = ""

    func run() throws {
        let dir = URL(fileURLWithPath: runs)
        let rows = try LinkValidationReport.rows(in: dir, skip: skip)
        guard !rows.isEmpty else { throw CLIError("\(runs): no pairs of emulated and real run logs with more than \(skip) steps") }
        let outDir = URL(fileURLWithPath: out ?? dir.deletingLastPathComponent().path)
        let table = LinkValidationReport.markdown(rows)
        let text = (note.isEmpty ? "" : note + "\n\n") + table
        try AtomicFile.write(Data(text.utf8), to: outDir.appendingPathComponent("results.md"))
        let plot = LinkValidationReport.plot(rows, caption: "median wall-clock step of steps \(skip + 1)…; default model, M=8, B=4, sleep clock; real: TCP, tbf/htb burst 4 KB, no added latency")
        let svg = outDir.appendingPathComponent("emulator_vs_real.svg")
        try AtomicFile.write(Data(plot.render().utf8), to: svg)
        print(text, terminator: "")
        print("plot        \(svg.path)")
    }
}

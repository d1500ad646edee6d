// The protomodel command line: a thin layer over the libraries. Only rank 0 prints.
import ArgumentParser

@main
struct Protomodel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protomodel",
        abstract: "Pipeline-parallel GPT training over slow links with Protocol Models compression.",
        subcommands: [Prepare.self, Train.self, Sample.self, BenchEngine.self])
}

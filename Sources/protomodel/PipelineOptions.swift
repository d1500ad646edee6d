// Options that shape the pipeline across ranks.
import ArgumentParser
import ProtoCore
import ProtoPipeline

extension ScheduleKind: ExpressibleByArgument {}

enum CodecName: String, CaseIterable, ExpressibleByArgument {
    case dense
}

struct PipelineOptions: ParsableArguments {
    @Option(help: "Layers per stage, comma separated, one entry per rank (default: as even as possible).")
    var split: String?
    @Option(help: "Pipeline schedule: \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var schedule: ScheduleKind = .oneFOneB
    @Option(help: "Wire codec at stage boundaries: \(CodecName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var codec: CodecName = .dense
    @Option(name: .customLong("recv-timeout"), help: "Seconds a rank waits for a boundary message before failing with the peer named (0 = forever).")
    var recvTimeout: Double = 300

    /// Layers per stage for `stages` ranks.
    func layerSplit(nLayer: Int, stages: Int) throws -> [Int] {
        guard let split else { return try StageSpec.evenSplit(nLayer: nLayer, stages: stages) }
        let parts = split.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.allSatisfy({ $0 != nil }) else { throw ValidationError("--split '\(split)' must be comma-separated layer counts, e.g. 2,2,1,1") }
        let counts = parts.map { $0! }
        guard counts.count == stages else {
            throw ValidationError("--split has \(counts.count) stages but \(stages) ranks are running; give one layer count per rank (or change -np)")
        }
        _ = try StageSpec.stages(split: counts, nLayer: nLayer)
        return counts
    }

    func makeCodec(config: ModelConfig) -> WireCodec {
        switch codec {
        case .dense: return DenseCodec()
        }
    }
}

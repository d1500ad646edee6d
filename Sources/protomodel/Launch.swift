// Starting a command on every MPI rank and ending it: one rank's failure stops the job,
// failures every rank knows about are reported once by rank 0, a signal-triggered stop
// exits with 75.
import ArgumentParser
import Foundation
import ProtoMPI
import ProtoTrain

/// A failure already reported (by rank 0) with every rank synchronised: exit 1 quietly.
struct ReportedFailure: Error {}

/// Runs `body` on every rank; a failure on one rank is reported with its rank and stops
/// the whole job at once (MPI_Abort) instead of leaving the others waiting.
func runRanks(recvTimeout: Double, _ body: (MPILink) throws -> Void) throws {
    try MPIEnv.initialize()
    defer { MPIEnv.finalize() }
    let link: MPILink
    do { link = try MPILink(recvTimeout: recvTimeout) } catch {
        // Same environment on every rank, so every rank fails here: rank 0 reports, all leave together.
        if MPIEnv.rank == 0 { FileHandle.standardError.write(Data("Error: \(error)\n".utf8)) }
        MPIEnv.barrier()
        throw ReportedFailure()
    }
    do {
        try body(link)
    } catch let e as ReportedStartupError {
        // Every rank knows. Rank 0 reports, then all leave together: a rank that exited
        // first would let mpirun kill rank 0 before it printed the reason.
        if link.rank == 0, let m = e.message { FileHandle.standardError.write(Data("Error: \(m)\n".utf8)) }
        try? link.barrier()
        throw ReportedFailure()
    } catch let e as StoppedBySignal {
        if link.rank == 0 { FileHandle.standardError.write(Data("protomodel: \(e)\n".utf8)) }
        throw ExitCode(75)
    } catch {
        FileHandle.standardError.write(Data("protomodel: rank \(link.rank): \(error)\n".utf8))
        MPIEnv.abort(1)
    }
}

/// The run settings every rank must share, from the common flag groups.
func runSettings(model: ModelOptions, options: TrainOptions, pipeline: PipelineOptions, threading: ThreadOptions,
                 extra: [String]) throws -> RunSettings {
    let tc = try options.trainConfig()
    let cfg = try model.config()
    let split = try pipeline.split.map { text -> [Int] in
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { throw ValidationError("--split '\(text)' must be comma-separated layer counts, e.g. 2,2,1,1") }
        return parts.map { $0! }
    }
    var s = RunSettings(model: cfg, vocabSize: model.vocabSize, train: tc, split: split, schedule: pipeline.schedule,
                       clock: pipeline.clock, evalBatches: options.evalBatches, data: options.data, threads: threading.threads,
                       linkKind: pipeline.linkModel, stageSpeed: pipeline.stageSpeed,
                       extra: extra + threading.settingWords)
    s.stages = pipeline.stages
    s.extraAdvice = ThreadOptions.settingAdvice
    s.replicaFormat = pipeline.replicaFormat
    s.replicaSyncEvery = pipeline.replicaSyncEvery
    return s
}

/// A problem found while a command runs (not a malformed flag): printed as "Error: …"
/// without the usage text ArgumentParser adds to ValidationError.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

// The convergence benchmark's unit of work: one codec (or model variant) trained for a fixed
// number of tokens on the in-process pipeline — the MPI pipeline's exact arithmetic, every
// stage on its own thread — with validation at intervals. Lossy codecs and per-boundary
// state only exist where there are boundaries, so the pipeline, not a one-stage model, is
// what is measured.
import Foundation
import ProtoCore

/// One validation measurement.
public struct ValidationPoint: Codable, Equatable, Sendable {
    public var step: Int      // optimizer steps done
    public var loss: Double
    public init(step: Int, loss: Double) { self.step = step; self.loss = loss }
}

/// What one variant produced; saved as JSON so an interrupted benchmark restarts per variant.
public struct ConvergenceResult: Codable, Equatable, Sendable {
    public var label: String
    /// The codec word it was trained with (`CodecSpec.description`).
    public var codec: String
    /// Hash of every setting that shapes the result (model, optimiser, data, split, codec).
    public var fingerprint: String
    public var stages: Int
    public var steps: Int
    public var tokensPerStep: Int
    public var parameters: Int
    /// Boundary bytes per token per boundary, each way, as encoded (payload + header).
    public var bytesPerTokenForward: Double
    public var bytesPerTokenBackward: Double
    /// Bytes per token per boundary spent keeping shared state identical across stages
    /// (adaptive U, per-boundary projectors), counted like boundary traffic.
    public var syncBytesPerToken: Double
    /// Relative reconstruction error of what crossed the boundaries (mean over steps).
    public var wireErrorForward: Double
    public var wireErrorBackward: Double
    public var validation: [ValidationPoint]
    public var finalTrainLoss: Double
    public var wallSeconds: Double
    public var finalValidation: Double? { validation.last?.loss }

    public init(label: String, codec: String, fingerprint: String, stages: Int, steps: Int, tokensPerStep: Int, parameters: Int,
                bytesPerTokenForward: Double, bytesPerTokenBackward: Double, syncBytesPerToken: Double,
                wireErrorForward: Double, wireErrorBackward: Double, validation: [ValidationPoint],
                finalTrainLoss: Double, wallSeconds: Double) {
        self.label = label; self.codec = codec; self.fingerprint = fingerprint; self.stages = stages; self.steps = steps
        self.tokensPerStep = tokensPerStep; self.parameters = parameters
        self.bytesPerTokenForward = bytesPerTokenForward; self.bytesPerTokenBackward = bytesPerTokenBackward
        self.syncBytesPerToken = syncBytesPerToken; self.wireErrorForward = wireErrorForward; self.wireErrorBackward = wireErrorBackward
        self.validation = validation; self.finalTrainLoss = finalTrainLoss; self.wallSeconds = wallSeconds
    }
    /// Forward + backward + sync bytes per token per boundary.
    public var totalBytesPerToken: Double { bytesPerTokenForward + bytesPerTokenBackward + 2 * syncBytesPerToken }
}

/// Progress of a running variant, for the caller to show.
public struct ConvergenceProgress: Sendable {
    public var step: Int          // steps done
    public var steps: Int
    public var trainLoss: Float
    public var validation: Double?
    public var elapsed: Double
}

public enum Convergence {
    /// Trains `spec` on `config` split over `split.count` stages for `train.steps` steps.
    /// `nextStep` yields each step's M micro-batches (the same sequence for every variant);
    /// `validation` (a multiple of M micro-batches) is scored every `evalEvery` steps and at the end.
    public static func run(label: String, config base: ModelConfig, spec: CodecSpec, train: TrainConfig, split: [Int],
                           schedule: ScheduleKind, fingerprint: String, nextStep: () -> [Microbatch],
                           validation: [Microbatch], evalEvery: Int,
                           progress: (ConvergenceProgress) -> Void) throws -> ConvergenceResult {
        var cfg = base
        try spec.apply(to: &cfg, split: split)
        precondition(validation.count % train.microbatches == 0 && !validation.isEmpty, "validation must be whole groups of M micro-batches")
        let p = try InProcessPipeline(config: cfg, split: split, train: train, schedule: schedule) { spec.makeCodec(model: $0) }
        let boundaries = Double(max(1, split.count - 1))
        let tokensPerStep = train.microbatches * train.batchSize * cfg.seqLen
        let start = Date()
        var vals: [ValidationPoint] = []
        var fwd = 0.0, bwd = 0.0, sync = 0.0, errF = 0.0, errB = 0.0, last: Float = .nan
        for s in 0..<train.steps {
            let r = try p.trainStep(s, nextStep())
            guard r.loss.isFinite else {
                throw ConfigError.invalid(field: "codec", reason: "\(label): training loss is \(r.loss) at step \(s + 1); this variant diverged")
            }
            last = r.loss
            let m = p.lastMetrics
            fwd += m.reduce(0) { $0 + $1.bytesSentForward }
            bwd += m.reduce(0) { $0 + $1.bytesSentBackward }
            sync += m.reduce(0) { $0 + $1.bytesSentSync }
            var e = WireErrorStats()
            for x in m {
                e.errSqForward += x.wireError.errSqForward; e.normSqForward += x.wireError.normSqForward
                e.errSqBackward += x.wireError.errSqBackward; e.normSqBackward += x.wireError.normSqBackward
            }
            errF += e.relativeForward; errB += e.relativeBackward
            var v: Double?
            if (s + 1) % max(1, evalEvery) == 0 || s + 1 == train.steps {
                v = Double(try p.validate(validation))
                vals.append(ValidationPoint(step: s + 1, loss: v!))
            }
            progress(ConvergenceProgress(step: s + 1, steps: train.steps, trainLoss: r.loss, validation: v,
                                         elapsed: Date().timeIntervalSince(start)))
        }
        let n = Double(train.steps), perToken = n * Double(tokensPerStep) * boundaries
        return ConvergenceResult(
            label: label, codec: spec.description, fingerprint: fingerprint, stages: split.count, steps: train.steps,
            tokensPerStep: tokensPerStep, parameters: cfg.parameterCount,
            bytesPerTokenForward: fwd / perToken, bytesPerTokenBackward: bwd / perToken, syncBytesPerToken: sync / perToken / 2,
            wireErrorForward: errF / n, wireErrorBackward: errB / n, validation: vals,
            finalTrainLoss: Double(last), wallSeconds: Date().timeIntervalSince(start))
    }
}

extension ConvergenceResult {
    /// The benchmark's JSON (run files and tables): pretty, sorted keys, and non-finite
    /// numbers — a diverged loss, the unbounded compression of a one-stage run that sends
    /// nothing — as the strings "inf", "-inf" and "nan", which plain JSON has no form for.
    public static func jsonEncoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }
    /// Reads what `jsonEncoder` writes.
    public static func jsonDecoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }
}

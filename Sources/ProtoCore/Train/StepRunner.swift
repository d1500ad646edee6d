// What a training loop needs from whatever computes a step (one process or a pipeline).

public protocol StepRunner: AnyObject {
    /// One optimizer step over M micro-batches.
    func step(_ step: Int, _ batches: [Microbatch]) -> StepResult
    /// Mean loss over `batches`, no update.
    func evaluate(_ batches: [Microbatch]) -> Float
}

extension LocalTrainer: StepRunner {}

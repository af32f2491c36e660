/// `simko loss`: evaluate a method's loss and its gradient on a JSON batch (float64).
module SimKO.Cli.LossArgs

open Argu

type LossArgs =
    | [<Mandatory; AltCommandLine("-i")>] Input of path: string
    | [<AltCommandLine("-o")>] Output of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Input _ -> "JSON batch: {method, settings, logits [B][T][V], tokens, old_logprobs, mask, rewards, group_size}."
            | Output _ -> "where to write {loss, grad_logits, metrics} (default: standard output)."

/// What the host reads.
type LossOptions = { Input: string; Output: string option }

let toOptions (r: ParseResults<LossArgs>) =
    { Input = r.GetResult Input; Output = r.TryGetResult Output }

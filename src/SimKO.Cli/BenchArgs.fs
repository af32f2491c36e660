/// `simko bench`: where the time and memory go (issue 6). A command, never a test.
module SimKO.Cli.BenchArgs

open Argu

type BenchArgs =
    | Quick
    | [<AltCommandLine("-o")>] Out of dir: string
    | Only of sections: string list
    | Device of device: string
    | Full
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Quick -> "small sizes and few repetitions (under a minute), for a smoke run."
            | Out _ -> "folder for bench.json and bench.md (default runs/bench)."
            | Only _ -> "run only these sections: machine, loss-overhead, update, rollout, grading, memory, collective (MPI all-reduce bandwidth, 2 ranks; seconds per training step as 1 process and 2 ranks)."
            | Device _ -> "cpu (default) or cuda."
            | Full -> "also the slow figures: rollout without the KV cache at 512 new tokens (one repetition; ~15 min on 2 CPU cores)."

type BenchOptions = { Quick: bool; Out: string; Only: string list; Device: string; Full: bool }

let toOptions (r: ParseResults<BenchArgs>) =
    { Quick = r.Contains Quick
      Out = r.GetResult(Out, defaultValue = "runs/bench")
      Only = r.GetResult(Only, defaultValue = [])
      Device = r.GetResult(Device, defaultValue = "cpu")
      Full = r.Contains Full }

/// `simko reproduce`: the paper's experiment at CPU scale (the README's main command).
module SimKO.Cli.ReproduceArgs

open Argu

type ReproduceArgs =
    | Quick
    | [<AltCommandLine("-o")>] Out of dir: string
    | Methods of names: string list
    | Seeds of count: int
    | Steps of count: int
    | Base_Steps of count: int
    | Eval_Samples of n: int
    | Eval_Problems of count: int
    | Eval_Temperature of t: float
    | Simko_Alpha of alpha: float
    | Simko_Lambda of lambda: float
    | Simko_K of k: int
    | Simko_Q of q: float
    | Task of name: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Quick -> "a 2-minute version for CI: smaller base, 24 RL steps, one seed, fewer evaluation samples."
            | Out _ -> "report folder (default runs/reproduce)."
            | Methods _ -> "methods to train from the same base (default grpo simko; any of grpo, simko, psr, nsr, w-reinforce, kl-cov, entropy-adv, forking, passk, dr-grpo)."
            | Seeds _ -> "seeds per method (default 3; the base model is shared)."
            | Steps _ -> "RL steps per run (default 300, REPRODUCTION-NOTES)."
            | Base_Steps _ -> "supervised warm-start steps of the base model (default 1000, REPRODUCTION-NOTES)."
            | Eval_Samples _ -> "samples per test problem n (default 64); pass@K for K = 1, 2, 4, … n."
            | Eval_Problems _ -> "test problems evaluated (default: all 200 held-out ones)."
            | Eval_Temperature _ -> "evaluation temperature (default 0.6 with top-p 0.95, the paper's protocol)."
            | Simko_Alpha _ -> "SimKO α (default 0.1: the CPU-scale setting of REPRODUCTION-NOTES; the paper's LLM setting is 0.01)."
            | Simko_Lambda _ -> "SimKO λ (default 1.5: CPU-scale; paper 1.1)."
            | Simko_K _ -> "SimKO K (default 3, paper)."
            | Simko_Q _ -> "SimKO entropy quantile q (default 0.8, paper)."
            | Task _ -> "built-in task: countdown (default), order (the logic task of Table 2) or wordmath."

type ReproduceOptions =
    { Quick: bool; Out: string; Methods: string list; Seeds: int; Steps: int option; BaseSteps: int option
      EvalSamples: int option; EvalProblems: int option; EvalTemperature: float
      SimkoAlpha: float; SimkoLambda: float; SimkoK: int; SimkoQ: float; Task: string }

let toOptions (r: ParseResults<ReproduceArgs>) =
    let quick = r.Contains Quick
    { Quick = quick
      Out = r.GetResult(Out, defaultValue = "runs/reproduce")
      Methods = r.GetResult(Methods, defaultValue = [ "grpo"; "simko" ])
      Seeds = r.GetResult(Seeds, defaultValue = (if quick then 1 else 3))
      Steps = r.TryGetResult Steps
      BaseSteps = r.TryGetResult Base_Steps
      EvalSamples = r.TryGetResult Eval_Samples
      EvalProblems = r.TryGetResult Eval_Problems
      EvalTemperature = r.GetResult(Eval_Temperature, defaultValue = 0.6)
      SimkoAlpha = r.GetResult(Simko_Alpha, defaultValue = 0.1)
      SimkoLambda = r.GetResult(Simko_Lambda, defaultValue = 1.5)
      SimkoK = r.GetResult(Simko_K, defaultValue = 3)
      SimkoQ = r.GetResult(Simko_Q, defaultValue = 0.8)
      Task = r.GetResult(Task, defaultValue = "countdown") }

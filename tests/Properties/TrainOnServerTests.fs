/// A training run whose rollouts go through `simko serve` (in-process server on loopback) gives the
/// same metrics.jsonl values as the same run sampling in process with the same engine (same seed, CPU),
/// and the rollout weights version rises every step.
module SimKO.Tests.TrainOnServerTests

open System.IO
open System.Text.Json.Nodes
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open SimKO.Math
open SimKO.Host.Model
open SimKO.Host.Rollout
open SimKO.Host.Serving
open SimKO.Host.Training
open SimKO.Host.Experiments

let private settings out =
    TrainerSettings(3, 4, 4, 1.0, 1.0, 0, 10, 1, 16, 1, 1e-3, 0, 0.9, 0.99, 0.0, 1.0, 2, 3, out, 100, 1, false, "{}")

let private method = Methods.Simko { Methods.simkoDefaults with Alpha = 0.1; Q = 0.5 }

let private model (task: TaskBinding) (seed: int64) =
    let m = new CausalLM(Reproduce.TinyConfig task)
    m.InitWeights seed
    m

let private metrics (out: string) =
    [ for line in File.ReadLines(Path.Combine(out, "metrics.jsonl")) -> JsonNode.Parse(line).AsObject() ]

/// Wall-clock figures differ between any two runs.
let private timing = set [ "time_s"; "rollout_tokens_per_s"; "update_tokens_per_s"; "peak_rss_mb" ]

let tests =
    testSequenced <| testList "train on a server" [
        testCase "a run through simko serve equals the in-process run, and the weights version rises every step" <| fun () ->
            let root = Path.Combine(Path.GetTempPath(), sprintf "simko-train-served-%d" System.Environment.ProcessId)
            if Directory.Exists root then Directory.Delete(root, true)
            let task = TaskBinding.Create "countdown"
            // in process: the continuous-batching engine over the live policy
            let outA = Path.Combine(root, "in-process")
            use a = model task 3L
            use engine = new ContinuousBatcher(a, task.Tokenizer.PadId, maxRows = 16)
            Trainer(method, settings outA, ServerRollout.WithEngine(Reproduce.Parts(a, task), engine), NullLogger.Instance).Run(false) |> ignore
            // served: the server starts from other weights; the sync before step 0 loads the trainer's
            let outB = Path.Combine(root, "served")
            use b = model task 3L
            use s = model task 99L
            s.eval() |> ignore
            let server =
                SimkoServer.StartAsync(s, task.Tokenizer, ChatMarkup.FromTemplate(null, "test", task.Tokenizer), "countdown",
                                       ServeOptions(Host = "127.0.0.1", Port = 0, MaxBatch = 16), NullLogger.Instance).GetAwaiter().GetResult()
            try
                let struct (parts, client) = ServerRollout.Attach(Reproduce.Parts(b, task), RolloutClientOptions(server.Url, RolloutServer.Simko, Concurrency = 4), outB, NullLogger.Instance)
                use _ = client
                Trainer(method, settings outB, parts, NullLogger.Instance).Run(false) |> ignore
            finally server.DisposeAsync().AsTask().GetAwaiter().GetResult()
            let ma, mb = metrics outA, metrics outB
            Expect.equal mb.Length 3 "three steps"
            Expect.equal [ for m in mb -> m.["rollout_weights_version"].GetValue<float>() ] [ 1.0; 2.0; 3.0 ] "the version rises every step"
            Expect.equal server.Engine.WeightsVersion 4L "the server loaded the weights before step 0 and after each step"
            for ra, rb in List.zip ma mb do
                for kv in ra do
                    if not (timing.Contains kv.Key) then
                        let x, y = kv.Value.GetValue<float>(), rb.[kv.Key].GetValue<float>()
                        if kv.Key = "sampler_logprob_mismatch" then Expect.floatClose { absolute = 1e-5; relative = 1e-4 } y x kv.Key
                        else Expect.equal y x (sprintf "step %d: %s" (ra.["step"].GetValue<int>()) kv.Key)
            Expect.isGreaterThan (ma |> List.map (fun m -> m.["reward_mean"].GetValue<float>()) |> List.distinct |> List.length) 0 "metrics were compared"
    ]

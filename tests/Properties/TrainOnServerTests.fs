/// A training run whose rollouts go through `simko serve` (an in-process server on loopback, chosen by
/// the spec's rollout_url and built by the run factory) gives the same metrics.jsonl values as the same
/// run sampling in process with its default engine (same seed, CPU; one sampler with per-sequence
/// streams makes any engine give the same tokens; two mini-batches, so the second asks for step-wide prompts 2 and 3),
/// and the weights version rises every step.
module SimKO.Tests.TrainOnServerTests

open System.IO
open System.Text.Json.Nodes
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open SimKO.Cli
open SimKO.Host.Rollout
open SimKO.Host.Serving
open SimKO.Host.Training
open SimKO.Host.Runs

let private spec (out: string) (extra: (string * string) list) =
    match TrainConfig.resolvePairs ([ "task", "countdown"; "method", "simko"; "steps", "3"; "prompts_per_step", "4"; "samples_per_prompt", "4"
                                      "max_new_tokens", "10"; "mini_batches", "2"; "micro_batch_size", "16"; "lr", "1e-3"; "seed", "3"
                                      "checkpoint_every", "100"; "keep_checkpoints", "1"; "tensorboard", "false"; "out", out ] @ extra) with
    | Ok s -> s
    | Error e -> failtestf "spec: %A" e

let tests =
    testSequenced <| testList "train on a server" [
        testCase "a run through simko serve equals the in-process run, and the weights version rises every step" <| fun () ->
            let root = Path.Combine(Path.GetTempPath(), sprintf "simko-train-served-%d" System.Environment.ProcessId)
            if Directory.Exists root then Directory.Delete(root, true)
            // in process: the run factory's default engine over the live policy
            let outA = Path.Combine(root, "in-process")
            let specA = spec outA []
            use runA = RunFactory.Build(specA, NullLogger.Instance)
            runA.Trainer.Run(false) |> ignore
            // served: the server starts from other weights; the sync before step 0 loads the trainer's
            let outB = Path.Combine(root, "served")
            let task = TaskBinding.Create RunSpec.Countdown
            use s = TinyModel.Create(task, 99L)
            s.eval() |> ignore
            let server =
                SimkoServer.StartAsync(s, task.Tokenizer, ChatMarkup.FromTemplate(null, task.Tokenizer), "countdown",
                                       ServeOptions(Host = "127.0.0.1", Port = 0, MaxBatch = 16), NullLogger.Instance).GetAwaiter().GetResult()
            try
                let specB = spec outB [ "rollout_url", server.Url; "rollout_server", "simko"; "rollout_concurrency", "4" ]
                Expect.isTrue specB.Rollout.IsServer "the spec names a server"
                use runB = RunFactory.Build(specB, NullLogger.Instance)
                Expect.isTrue (runB.Parts.Rollout :? ServerRolloutClient) "the factory picked the server client"
                runB.Trainer.Run(false) |> ignore
            finally server.DisposeAsync().AsTask().GetAwaiter().GetResult()
            let ma, mb = Checks.metricsOf outA, Checks.metricsOf outB
            Expect.equal mb.Length 3 "three steps"
            Expect.equal ma.Length 3 "three steps in process"
            Expect.equal [ for m in mb -> m.["rollout_weights_version"].GetValue<float>() ] [ 1.0; 2.0; 3.0 ] "the version rises every step"
            Expect.equal server.Engine.WeightsVersion 4L "the server loaded the weights before step 0 and after each step"
            Expect.isTrue (Directory.Exists(Path.Combine(outB, RolloutWeightSync.Folder, "3"))) "the last export is kept"
            Checks.expectSameMetrics ma mb
    ]

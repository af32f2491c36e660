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
        for lora in [ false; true ] do
          testCase (sprintf "mpirun -np 2 through simko serve%s: rank 0 alone loads the %s, every rank sends its prompts, and the run equals 2 ranks in process"
                        (if lora then " with LoRA" else "") (if lora then "adapter (every rank asks for the name rank 0 loaded)" else "weights")) <| fun () ->
            match CollectiveTests.mpirun with
            | None -> skiptest CollectiveTests.installHint
            | Some _ -> ()
            let root = Path.Combine(Path.GetTempPath(), sprintf "simko-train-served-dp%s-%d" (if lora then "-lora" else "") System.Environment.ProcessId)
            if Directory.Exists root then Directory.Delete(root, true)
            let args (out: string) (extra: string list) =
                [ "train"; "--set"; "task=countdown"; "--set"; sprintf "model=%s" CollectiveTests.countdownBase.Value; "--set"; "method=simko"
                  "--set"; "steps=3"; "--set"; "prompts_per_step=4"; "--set"; "samples_per_prompt=8"; "--set"; "mini_batches=2"; "--set"; "lr=1e-3"; "--set"; "seed=5"
                  "--set"; "checkpoint_every=100"; "--set"; "tensorboard=false"; "--set"; sprintf "out=%s" out ]
                @ (if lora then [ "--set"; "lora_rank=4" ] else []) @ extra
            let outA = Path.Combine(root, "in-process")
            let a = CollectiveTests.launch 2 (args outA []) 300.0
            Expect.equal a.Code 0 (sprintf "mpirun -np 2 simko train (in process) failed:\n%s" a.Output)
            let task = TaskBinding.Create RunSpec.Countdown
            // full weights: the server starts from other weights (the first sync loads the trainer's); LoRA: it holds the
            // trainer's base and is sent adapters only
            use s = if lora then SimKO.Host.Checkpoints.HfFolder.LoadModel(CollectiveTests.countdownBase.Value, TorchSharp.torch.CPU, TorchSharp.torch.ScalarType.Float32)
                    else TinyModel.Create(task, 99L)
            s.eval() |> ignore
            let server =
                SimkoServer.StartAsync(s, task.Tokenizer, ChatMarkup.FromTemplate(null, task.Tokenizer), "countdown",
                                       ServeOptions(Host = "127.0.0.1", Port = 0, MaxBatch = 16), NullLogger.Instance).GetAwaiter().GetResult()
            let outB = Path.Combine(root, "served")
            try
                let b = CollectiveTests.launch 2 (args outB [ "--set"; sprintf "rollout_url=%s" server.Url; "--set"; "rollout_server=simko" ]) 300.0
                Expect.equal b.Code 0 (sprintf "mpirun -np 2 simko train (through simko serve) failed:\n%s" b.Output)
            finally server.DisposeAsync().AsTask().GetAwaiter().GetResult()
            let ma, mb = Checks.metricsOf outA, Checks.metricsOf outB
            Expect.equal [ for m in mb -> m.["world_size"].GetValue<float>() ] [ 2.0; 2.0; 2.0 ] "trained as 2 ranks"
            Expect.equal [ for m in mb -> m.["rollout_weights_version"].GetValue<float>() ] [ 1.0; 2.0; 3.0 ] "the version rises every step"
            // each version loaded once: a sync by both ranks would have loaded 8 times
            Expect.equal server.Engine.WeightsVersion 4L "rank 0 loaded before step 0 and after each step, once each"
            // partly right samples: a non-zero gradient, so the later syncs send moved weights
            let rewards = [ for m in mb -> m.["reward_mean"].GetValue<float>() ]
            Expect.isTrue (List.exists (fun r -> r > 0.0 && r < 1.0) rewards) (sprintf "mixed rewards (%A)" rewards)
            Expect.isTrue (List.exists (fun (m: System.Text.Json.Nodes.JsonObject) -> m.["grad_norm"].GetValue<float>() > 0.0) mb) "a non-zero gradient"
            Checks.expectSameMetrics ma mb
    ]

/// The collectives of issue 21: the one-process backend, the NCCL binding's error where libnccl is
/// absent, and — under `mpirun --allow-run-as-root --oversubscribe -np 2`, one torch thread per rank —
/// MPI's all-reduce, reduce-scatter, all-gather and broadcast against their formulas, and a hung or
/// killed rank stopping the other within the timeout with an error naming the rank (and the step); and
/// `mpirun -np 2 simko train` ending with the weights of `simko train` for grpo, simko, forking and kl-cov
/// (the mini-batch context — token counts, the batch gate's τ, KL-Cov's statistics — taken over the ranks),
/// and a run resumed with another number of ranks (2 → 1, 1 → 2) ending where the uninterrupted one does.
/// Without mpirun the multi-process tests are skipped, naming the install command.
module SimKO.Tests.CollectiveTests

open System
open System.Diagnostics
open System.IO
open Expecto
open TorchSharp
open SimKO.Cli
open SimKO.Host.Collective

/// mpirun on PATH, or None.
let mpirun =
    (Environment.GetEnvironmentVariable "PATH" |> string).Split(':', StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun d -> Path.Combine(d, "mpirun"))
    |> Array.tryFind File.Exists

let installHint = "mpirun is not installed: apt-get install -y openmpi-bin (.ci/run does this on CI)"

/// The simko executable beside the tests (simko.dll, run with dotnet).
let simkoDll = Path.Combine(AppContext.BaseDirectory, "simko.dll")

type Launch = { Code: int; Output: string; Seconds: float }

/// `mpirun -np <ranks> dotnet simko.dll <args>` with one torch thread per rank; killed after <limitS>.
let launch (ranks: int) (args: string list) (limitS: float) : Launch =
    match mpirun with
    | None -> skiptest installHint; Unchecked.defaultof<_>
    | Some exe ->
        let psi = ProcessStartInfo(exe, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
        for a in [ "--allow-run-as-root"; "--oversubscribe"; "-np"; string ranks; "-x"; "OMP_NUM_THREADS=1"; "dotnet"; simkoDll ] @ args do psi.ArgumentList.Add a
        psi.Environment["OMP_NUM_THREADS"] <- "1"
        let clock = Stopwatch.StartNew()
        use p = Process.Start psi
        let out = p.StandardOutput.ReadToEndAsync()
        let err = p.StandardError.ReadToEndAsync()
        if not (p.WaitForExit(int (limitS * 1000.0))) then
            p.Kill true
            failtestf "mpirun %s did not finish within %g s" (String.concat " " args) limitS
        { Code = p.ExitCode; Output = out.Result + err.Result; Seconds = clock.Elapsed.TotalSeconds }

let private temp name =
    let d = Path.Combine(Path.GetTempPath(), sprintf "simko-dp-%s-%d" name Environment.ProcessId)
    if Directory.Exists d then Directory.Delete(d, true)
    d

/// A Countdown base whose samples are partly right (so rewards differ within groups and the gradient is
/// not zero): the tiny model after a short supervised warm-start, as `reproduce` builds its base, as an HF folder.
let countdownBase =
    lazy (
        let dir = temp "base"
        let task = SimKO.Host.Runs.TaskBinding.Create RunSpec.BuiltinTask.Countdown
        use m = SimKO.Host.Runs.TinyModel.Create(task, 1L)
        SimKO.Host.Training.WarmStart.Run(SimKO.Host.Model.ModelPolicy m, (fun rng -> task.Example.Invoke(rng, 0.7)), task.Tokenizer.PadId,
            SimKO.Host.Training.WarmStartSettings(150, 64, 3e-3, 0.9, 0.99, 1.0, 1), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance) |> ignore
        SimKO.Host.Checkpoints.HfFolder.Save(m, task.Tokenizer, dir)
        dir)

/// Named float32 tensors of a safetensors file as flat arrays.
let private weightsOf (path: string) =
    SimKO.Host.Checkpoints.SafeTensors.Read path
    |> Seq.map (fun kv -> kv.Key, kv.Value.to_type(torch.ScalarType.Float32).reshape(-1L).data<float32>().ToArray())
    |> Map.ofSeq

/// A metric of every step of a run's metrics.jsonl.
let private series (name: string) (out: string) =
    File.ReadAllLines(Path.Combine(out, "metrics.jsonl"))
    |> Array.map (fun l -> Text.Json.JsonDocument.Parse(l).RootElement.GetProperty(name).GetDouble())

let private lr = 3e-4
/// AdamW's ε: an element whose gradient is at the rounding level of the summation order (k_proj.bias, whose
/// gradient the softmax cancels but for what RoPE's rotation leaves, and any gradient that cancels) moves by
/// lr·g/(|g| + ε), so a rounding difference δ moves it by at most lr·δ/ε: with ε = 1e-8 that is lr/100 for
/// δ = 1e-10; 1e-6 keeps it at lr/10⁴ while every gradient above 1e-6 still steps by about lr.
let private eps = 1e-6

/// `simko train` of 3 steps, 8 prompts × 8 samples in 2 mini-batches (6 AdamW updates), from the Countdown base.
let private trainArgs (methodArgs: string list) (out: string) =
    [ "train"; "--set"; "task=countdown"; "--set"; sprintf "model=%s" countdownBase.Value ] @ methodArgs @
    [ "--set"; "steps=3"; "--set"; "prompts_per_step=8"; "--set"; "samples_per_prompt=8"; "--set"; "mini_batches=2"
      "--set"; sprintf "lr=%g" lr; "--set"; sprintf "eps=%g" eps; "--set"; "checkpoint_every=3"; "--set"; "tensorboard=false"; "--set"; "seed=5"; "--set"; sprintf "out=%s" out ]

/// 2 ranks × 4 prompts against 1 rank × 8 prompts (in this process): the same rewards every step, the same
/// global gradient norms, and the same master weights after 3 steps up to float summation order, where
/// AdamW moved the weights by whole learning rates (so a wrong gradient or mini-batch statistic shows).
/// <twoRanks>: settings of the 2-rank run only (shard_optimizer, optimizer_offload: the same math).
let private sameAsOneProcess (name: string) (methodArgs: string list) (twoRanks: string list) =
    let one, two = temp (name + "-1"), temp (name + "-2")
    match SimKO.Cli.Commands.parse (Array.ofList (trainArgs methodArgs one)) with
    | SimKO.Cli.Commands.Parsed.Run (SimKO.Cli.Commands.Command.Train (spec, _)) ->
        Expect.equal (SimKO.Host.Commands.TrainCommand.Run(spec, false, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)) 0 "one process trains"
    | other -> failtestf "parse: %A" other
    let r = launch 2 (trainArgs methodArgs two @ twoRanks) 300.0
    Expect.equal r.Code 0 (sprintf "mpirun -np 2 simko train failed:\n%s" r.Output)
    Expect.sequenceEqual (series "world_size" two) [ 2.0; 2.0; 2.0 ] "trained as 2 ranks"
    let rewardsOne = series "reward_mean" one
    Expect.sequenceEqual (series "reward_mean" two) rewardsOne "the same samples and rewards every step (per-sample streams)"
    // some responses right and some wrong: groups with non-zero advantages, so a non-zero gradient
    let total = Array.average rewardsOne
    Expect.isTrue (total > 0.0 && total < 1.0) (sprintf "rewards differ (per step %A)" rewardsOne)
    let normsOne, normsTwo = series "grad_norm" one, series "grad_norm" two
    Expect.isGreaterThan (Array.max normsOne) 0.0 "a non-zero gradient"
    Array.iter2 (fun a c -> Expect.floatClose { absolute = 1e-7; relative = 1e-4 } c a (sprintf "the global gradient norm of every step (%A vs %A)" normsTwo normsOne)) normsOne normsTwo
    let final out = weightsOf (Path.Combine(out, "checkpoints", "step-00000003", "model.safetensors"))
    let b = weightsOf (Path.Combine(countdownBase.Value, "model.safetensors"))
    let w1, w2 = final one, final two
    Expect.sequenceEqual (Map.keys w2) (Map.keys w1) "the same tensors"
    let maxAbsDiff (x: float32[]) (y: float32[]) = Array.fold2 (fun m a c -> max m (float (abs (a - c)))) 0.0 x y
    let moved = w1 |> Seq.collect (fun (KeyValue (k, v)) -> Array.map2 (fun a c -> float (abs (a - c))) v b[k]) |> Array.ofSeq |> Array.sort
    Expect.isGreaterThan moved[moved.Length / 2] (0.5 * lr) "the weights moved: half the elements by at least lr/2 in 6 updates"
    for KeyValue (k, v) in w1 do
        let tolerance = 0.02 * lr
        let d = maxAbsDiff v w2[k]
        Expect.isLessThanOrEqual d tolerance (sprintf "%s: 2 ranks end where 1 rank does (max |Δ| = %.3g lr; moved up to %.3g lr)" k (d / lr) (maxAbsDiff v b[k] / lr))

/// A run resumed with another number of ranks (the checkpoint holds the whole optimizer state, so each rank
/// loads it whole): 2 steps as `ranksBefore`, the third as `ranksAfter`, against 3 uninterrupted steps of one process.
let private resumedAcross (ranksBefore: int) (ranksAfter: int) =
    let run (ranks: int) (args: string list) =
        if ranks = 1 then
            match SimKO.Cli.Commands.parse (Array.ofList args) with
            | SimKO.Cli.Commands.Parsed.Run (SimKO.Cli.Commands.Command.Train (spec, resume)) ->
                Expect.equal (SimKO.Host.Commands.TrainCommand.Run(spec, resume, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)) 0 "one process trains"
            | other -> failtestf "parse: %A" other
        else
            let r = launch ranks args 300.0
            Expect.equal r.Code 0 (sprintf "mpirun -np %d simko train failed:\n%s" ranks r.Output)
    let method = [ "--set"; "method=grpo" ]
    let reference, resumed = temp (sprintf "ref-%d%d" ranksBefore ranksAfter), temp (sprintf "resumed-%d%d" ranksBefore ranksAfter)
    run 1 (trainArgs method reference)
    run ranksBefore (trainArgs method resumed @ [ "--set"; "steps=2" ])
    run ranksAfter (trainArgs method resumed @ [ "--resume" ])
    Expect.sequenceEqual (series "reward_mean" resumed) (series "reward_mean" reference) "the same samples every step"
    let final out = weightsOf (Path.Combine(out, "checkpoints", "step-00000003", "model.safetensors"))
    let w1, w2 = final reference, final resumed
    for KeyValue (k, v) in w1 do
        let d = Array.fold2 (fun m a c -> max m (float (abs (a - c)))) 0.0 v w2[k]
        Expect.isLessThanOrEqual d (0.02 * lr) (sprintf "%s: resumed across ranks ends where one process does (max |Δ| = %.3g lr)" k (d / lr))

/// Tokens per micro-batch for the token-budget test: 2 or 3 of the Countdown base's rows (11 to 15 tokens), so the
/// ranks' shares of a mini-batch fall into different numbers of micro-batches (measured: 6 and 5 in step 1's second
/// mini-batch), which the sharded optimizer's per-micro-batch reduce-scatter must even out.
let private microBudget = 45

/// The checkpoint of step 3 of a run: model and optimizer tensors by name.
let private checkpoint3 (out: string) =
    let dir = Path.Combine(out, "checkpoints", "step-00000003")
    weightsOf (Path.Combine(dir, "model.safetensors")), weightsOf (Path.Combine(dir, "optimizer.safetensors"))

/// A sharded run of 2 ranks: 3 steps at once, and 2 steps then the third after a resume with 2 ranks again,
/// end with equal checkpoints (every rank restores its slice of the whole state; nothing depends on the break).
let private shardedResumeSameRanks () =
    let shard = [ "--set"; "method=grpo"; "--set"; "shard_optimizer=true" ]
    let whole, resumed = temp "shard-whole", temp "shard-resumed"
    let run args =
        let r = launch 2 args 300.0
        Expect.equal r.Code 0 (sprintf "mpirun -np 2 simko train failed:\n%s" r.Output)
        r
    run (trainArgs shard whole) |> ignore
    run (trainArgs shard resumed @ [ "--set"; "steps=2" ]) |> ignore
    let r = run (trainArgs shard resumed @ [ "--resume" ])
    Expect.isFalse (r.Output.Contains "re-sharded") "the same layout: nothing re-sharded"
    let (m1, o1), (m2, o2) = checkpoint3 whole, checkpoint3 resumed
    for KeyValue (k, v) in m1 do Expect.sequenceEqual m2[k] v (sprintf "%s: the same weights bit for bit" k)
    for KeyValue (k, v) in o1 do Expect.sequenceEqual o2[k] v (sprintf "%s: the same optimizer state bit for bit" k)

/// 2 steps as 2 ranks with shard_optimizer, the third as 1 process (sharded over one rank), against 3 steps of one
/// replicated process: the same weights up to float summation order, and the resumed run's log says it re-sharded.
let private shardedResumedAsOne () =
    let reference, resumed = temp "shard-ref", temp "shard-as-one"
    let grpo = [ "--set"; "method=grpo" ]
    match SimKO.Cli.Commands.parse (Array.ofList (trainArgs grpo reference)) with
    | SimKO.Cli.Commands.Parsed.Run (SimKO.Cli.Commands.Command.Train (spec, _)) ->
        Expect.equal (SimKO.Host.Commands.TrainCommand.Run(spec, false, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)) 0 "one process trains"
    | other -> failtestf "parse: %A" other
    let shard = grpo @ [ "--set"; "shard_optimizer=true" ]
    let before = launch 2 (trainArgs shard resumed @ [ "--set"; "steps=2" ]) 300.0
    Expect.equal before.Code 0 (sprintf "mpirun -np 2 simko train failed:\n%s" before.Output)
    let after = launch 1 (trainArgs shard resumed @ [ "--resume" ]) 300.0
    Expect.equal after.Code 0 (sprintf "simko train --resume failed:\n%s" after.Output)
    Expect.stringContains after.Output "re-sharded the optimizer state" (sprintf "says it re-sharded:\n%s" after.Output)
    Expect.stringContains after.Output "from sharded over 2 ranks to sharded over 1 rank" "from 2 shards to 1"
    Expect.sequenceEqual (series "reward_mean" resumed) (series "reward_mean" reference) "the same samples every step"
    let (w1, _), (w2, _) = checkpoint3 reference, checkpoint3 resumed
    for KeyValue (k, v) in w1 do
        let d = Array.fold2 (fun m a c -> max m (float (abs (a - c)))) 0.0 v w2[k]
        Expect.isLessThanOrEqual d (0.02 * lr) (sprintf "%s: resumed as one process ends where one process does (max |Δ| = %.3g lr)" k (d / lr))

let tests =
    testList "collective" [
        testCase "the one-process collective is the identity" <| fun () ->
            use c = new SingleProcess()
            let x = torch.arange(6L, dtype = torch.ScalarType.Float32)
            c.AllReduce(x, ReduceOp.Mean)
            Expect.sequenceEqual (x.data<float32>().ToArray()) [| 0.f; 1.f; 2.f; 3.f; 4.f; 5.f |] "all-reduce of one rank"
            Expect.sequenceEqual (c.AllGather(x).data<float32>().ToArray()) (x.data<float32>().ToArray()) "all-gather of one rank"
            Expect.throws (fun () -> c.AllReduce(torch.zeros(2L, 3L))) "a 2-D tensor is refused"
        testCase "auto outside mpirun is one process" <| fun () ->
            if LaunchEnvironment.Launched then skiptest "this test console runs under a launcher"
            use c = Collectives.Open(SimKO.Math.AutoCollective, torch.CPU, 600.0)
            Expect.equal c.Backend "none" "auto without mpirun/srun"
        testCase "collective=nccl without libnccl says what is missing and how to install it" <| fun () ->
            let ok, why = NcclBackend.Available()
            if ok then skiptest "libnccl.so.2 is present here (the NCCL path is exercised on CUDA machines)"
            let e = Expect.throwsC (fun () -> Collectives.Open(SimKO.Math.NcclCollective, torch.CPU, 600.0) |> ignore) id
            Expect.stringContains e.Message "libnccl.so.2" "names the library"
            Expect.stringContains e.Message "collective=mpi" "says what to use instead"
            Expect.equal e.Message why "the same message as the availability check"
        testSequenced <| testList "under mpirun -np 2" [
            testCase "all-reduce, reduce-scatter, all-gather and broadcast equal their formulas" <| fun () ->
                let r = launch 2 [ "collective-check" ] 120.0
                Expect.equal r.Code 0 (sprintf "collective-check failed:\n%s" r.Output)
                for rank in 0 .. 1 do
                    Expect.stringContains r.Output (sprintf "rank %d/2: all-reduce, reduce-scatter, all-gather, broadcast, barrier ok" rank) "every rank checked"
            testCase "a hung rank makes the other stop within the timeout, naming the rank and the step" <| fun () ->
                let r = launch 2 [ "collective-check"; "--timeout"; "3"; "--hang-rank"; "1"; "--step"; "7" ] 90.0
                Expect.notEqual r.Code 0 "the job failed"
                Expect.stringContains r.Output "rank 1 did not answer" (sprintf "names the hung rank:\n%s" r.Output)
                Expect.stringContains r.Output "at step 7" "names the step"
            for name, methodArgs in [ "grpo", [ "--set"; "method=grpo" ]
                                      "simko", [ "--set"; "method=simko" ]
                                      "forking", [ "--set"; "method=forking" ]
                                      "kl-cov", [ "--set"; "method=kl-cov"; "--set"; "method.ratio=0.05" ] ] do
                testCase (sprintf "2 ranks × 4 prompts end with the weights of 1 rank × 8 prompts after 3 steps (%s)" name) <| fun () ->
                    sameAsOneProcess name methodArgs []
            // shard_optimizer: gradients reduce-scattered to the owners of 1/2 of the flat parameters, the clip norm from
            // the shards, each rank's slice updated, the weights all-gathered; float32 (the parameters are the masters,
            // gradients reduce-scattered once per mini-batch), and with offload (host float32 masters, every micro-batch
            // reduce-scattered) under a token budget that cuts the ranks' rows into unequal numbers of micro-batches
            testCase "2 ranks with shard_optimizer end with the weights of 1 rank × 8 prompts (replicated) after 3 steps (float32)" <| fun () ->
                sameAsOneProcess "shard" [ "--set"; "method=grpo" ] [ "--set"; "shard_optimizer=true" ]
            testCase "2 ranks with shard_optimizer and optimizer_offload end with the weights of 1 rank × 8 prompts after 3 steps (token-budget micro-batches)" <| fun () ->
                sameAsOneProcess "shard-offload" [ "--set"; "method=simko"; "--set"; sprintf "max_tokens_per_micro_batch=%d" microBudget ]
                    [ "--set"; "shard_optimizer=true"; "--set"; "optimizer_offload=true"; "--set"; "collective_timeout_s=60" ]
            testCase "a sharded run resumed with the same 2 ranks repeats the uninterrupted run bit for bit" <| fun () ->
                shardedResumeSameRanks ()
            testCase "a sharded run of 2 ranks resumed as 1 process ends with the uninterrupted run's weights and says it re-sharded" <| fun () ->
                shardedResumedAsOne ()
            testCase "a run of 2 ranks resumed as 1 process, and of 1 process resumed as 2 ranks, ends with the uninterrupted run's weights" <| fun () ->
                resumedAcross 2 1
                resumedAcross 1 2
            testCase "a killed rank stops the job, naming the rank" <| fun () ->
                let r = launch 2 [ "collective-check"; "--timeout"; "5"; "--die-rank"; "1" ] 90.0
                Expect.notEqual r.Code 0 "the job failed"
                Expect.stringContains r.Output "rank 1" (sprintf "names the dead rank:\n%s" r.Output)
                Expect.isLessThan r.Seconds 60.0 "it stopped instead of hanging"
        ]
    ]

/// The training loop with toy parts: 4 steps equal 2 steps + resume + 2 steps bit for bit, a
/// damaged checkpoint is named and never loaded, repeated NaN updates stop the run.
module SimKO.Tests.TrainerTests

open System.IO
open Expecto
open TorchSharp
open Microsoft.Extensions.Logging.Abstractions
open SimKO.Math
open SimKO.Host.Training
open SimKO.Host.Checkpoints
open SimKO.Host.Model
open SimKO.Host.Rollout
open SimKO.Tests.UpdateStepTests

/// A minimal sampler over the toy policy (categorical at temperature 1, fixed length).
let private generate (policy: IPolicy) (req: GenerateRequest) : System.Collections.Generic.IReadOnlyList<Generated> =
    use _ = torch.no_grad()
    let gen = new torch.Generator(uint64 req.Seed)
    [| for p in 0 .. req.Prompts.Count - 1 do
         for _ in 1 .. req.SamplesPerPrompt do
             let mutable seq = Array.copy req.Prompts.[p]
             let tokens = ResizeArray()
             for _ in 1 .. req.MaxNewTokens do
                 use ids = torch.tensor(seq |> Array.map int64).unsqueeze(0L)
                 use logits = policy.Logits(ids, torch.ones_like(ids))
                 use probs = logits.select(1L, -1L).softmax(-1L)
                 let t = int (probs.multinomial(1L, false, gen).item<int64>())
                 tokens.Add t
                 seq <- Array.append seq [| t |]
             yield Generated(p, tokens.ToArray(), Array.zeroCreate tokens.Count) |] :> _

/// Tensor files for the test: name, shape, float32 data.
let private writeTensors (s: Stream) (d: System.Collections.Generic.IReadOnlyDictionary<string, torch.Tensor>) =
    use w = new BinaryWriter(s, System.Text.Encoding.UTF8, true)
    w.Write d.Count
    for kv in d |> Seq.sortBy (fun kv -> kv.Key) do
        let t = kv.Value.detach().to_type(torch.ScalarType.Float32).contiguous()
        w.Write kv.Key
        w.Write t.shape.Length
        for x in t.shape do w.Write x
        for x in t.data<float32>().ToArray() do w.Write x

let private readTensors (path: string) =
    use r = new BinaryReader(File.OpenRead path)
    let n = r.ReadInt32()
    let d = System.Collections.Generic.Dictionary<string, torch.Tensor>()
    for _ in 1 .. n do
        let name = r.ReadString()
        let shape = Array.init (r.ReadInt32()) (fun _ -> r.ReadInt64())
        let count = shape |> Array.fold (*) 1L
        d[name] <- torch.tensor(Array.init (int count) (fun _ -> r.ReadSingle())).reshape(shape)
    d

let private settings (m: Methods.Method) out steps : SimKO.Cli.RunSpec.TrainSpec =
    { SimKO.Cli.TrainConfig.defaults with
        Method = m; Steps = steps; PromptsPerStep = 4; SamplesPerPrompt = 4; Temperature = 1.0; TopP = 1.0; TopK = 0; MaxNewTokens = 3
        MiniBatches = 2; MicroBatchSize = 8; PpoEpochs = 1
        Optimizer = { LearningRate = 1e-2; WarmupSteps = 0; Beta1 = 0.9; Beta2 = 0.99; Eps = 1e-8; WeightDecay = 0.0; GradClip = 1.0 }
        MaxBadSteps = 2; Seed = 7; Out = out; CheckpointEvery = 2; KeepCheckpoints = 3; Tensorboard = false }

/// A trainer of a spec: what the run factory hands it (the loop's settings and the whole configuration).
let private trainerOf (spec: SimKO.Cli.RunSpec.TrainSpec, parts: TrainerParts, log: Microsoft.Extensions.Logging.ILogger) =
    Trainer(SimKO.Cli.TrainConfig.trainSettings spec, parts, log)

let private parts (policy: ToyPolicy) =
    let p = policy :> IPolicy
    TrainerParts(
        Policy = p,
        Rollout = { new SimKO.Host.Rollout.IRolloutEngine with member _.Generate req = generate p req },
        Problems = [| for i in 0 .. 9 -> TrainProblem(string i, [| 1 + i % 5; 2 |], fun r -> if Array.contains 3 r then 1.0 else 0.0) |],
        PadId = 0,
        WriteTensors = System.Action<_, _>(writeTensors),
        ReadTensors = System.Func<_, _>(readTensors),
        ExportHf = System.Action<string>(fun dir -> Directory.CreateDirectory dir |> ignore))

/// A logger that keeps the warnings it is given (and every message).
type private RecordingLogger() =
    let warnings = ResizeArray<string>()
    let messages = ResizeArray<string>()
    member _.Warnings = List.ofSeq warnings
    member _.Messages = List.ofSeq messages
    interface Microsoft.Extensions.Logging.ILogger with
        member _.BeginScope _ = null
        member _.IsEnabled _ = true
        member _.Log(level, _, state, ex, formatter) =
            messages.Add(formatter.Invoke(state, ex))
            if level = Microsoft.Extensions.Logging.LogLevel.Warning then warnings.Add(formatter.Invoke(state, ex))

let private simko = Methods.make Methods.simko { Methods.simkoDefaults with Alpha = 0.1; Q = 0.5 }

let private paramsOf (policy: ToyPolicy) =
    (policy :> IPolicy).NamedParameters |> Seq.map (fun struct (_, t) -> t.detach().clone()) |> Array.ofSeq

let private tempDir name =
    let d = Path.Combine(Path.GetTempPath(), sprintf "simko-%s-%d" name System.Environment.ProcessId)
    if Directory.Exists d then Directory.Delete(d, true)
    d

let tests =
    testSequenced <| testList "trainer" [
        testCase "4 steps equal 2 steps + resume + 2 steps, bit for bit" <| fun () ->
            let full = ToyPolicy(10L, 8L, 3L)
            trainerOf(settings simko (tempDir "full") 4, parts full, NullLogger.Instance).Run(false) |> ignore
            let out = tempDir "halves"
            let first = ToyPolicy(10L, 8L, 3L)
            let r1 = trainerOf(settings simko out 4, parts first, NullLogger.Instance).Run(false, stopAfter = 2L)
            Expect.equal r1.StepsDone 2L "stopped after 2"
            let second = ToyPolicy(10L, 8L, 99L)            // different init: everything must come from the checkpoint
            let r2 = trainerOf(settings simko out 4, parts second, NullLogger.Instance).Run(true)
            Expect.equal r2.StepsDone 4L "finished"
            for a, b in Array.zip (paramsOf full) (paramsOf second) do
                Expect.isTrue (a.Equals(b)) "parameters identical"
        testCase "a run resumed with shard_optimizer, then without, repeats the uninterrupted run bit for bit and says it re-sharded" <| fun () ->
            let full = ToyPolicy(10L, 8L, 3L)
            trainerOf(settings simko (tempDir "unsharded-full") 6, parts full, NullLogger.Instance).Run(false) |> ignore
            let out = tempDir "reshard"
            let sharded (v: bool) =
                let s = settings simko out 6
                { s with Distributed = { s.Distributed with ShardOptimizer = v } }
            trainerOf(sharded false, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance).Run(false, stopAfter = 2L) |> ignore
            let toShards, toReplicated = RecordingLogger(), RecordingLogger()
            // different inits: everything must come from the checkpoints
            trainerOf(sharded true, parts (ToyPolicy(10L, 8L, 99L)), toShards).Run(true, stopAfter = 2L) |> ignore
            let last = ToyPolicy(10L, 8L, 98L)
            let r = trainerOf(sharded false, parts last, toReplicated).Run(true)
            Expect.equal r.StepsDone 6L "finished"
            let said (log: RecordingLogger) (text: string) =
                Expect.exists log.Messages (fun m -> m.Contains "re-sharded the optimizer state" && m.Contains text) (sprintf "says '%s' in %A" text log.Messages)
            said toShards "from replicated over 1 rank to sharded over 1 rank"
            said toReplicated "from sharded over 1 rank to replicated over 1 rank"
            for a, b in Array.zip (paramsOf full) (paramsOf last) do
                Expect.isTrue (a.Equals(b)) "parameters identical"
        testCase "resume compares the whole run configuration and names every setting that differs" <| fun () ->
            let out = tempDir "other-config"
            trainerOf(settings simko out 4, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance).Run(false, stopAfter = 2L) |> ignore
            let changed =
                { settings (Methods.make Methods.simko { Methods.simkoDefaults with Alpha = 0.2; Q = 0.5 }) out 6 with
                    Optimizer = { (settings simko out 6).Optimizer with LearningRate = 2e-2 } }
            Expect.throwsC (fun () -> trainerOf(changed, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance).Run(true) |> ignore)
                (fun e ->
                    Expect.stringContains e.Message "lr: checkpoint 0.01, this run 0.02" "names lr with both values"
                    Expect.stringContains e.Message "method.alpha: checkpoint 0.1, this run 0.2" "names the method setting"
                    Expect.isFalse (e.Message.Contains "steps:") "steps may change on resume")
            // the same configuration with more steps resumes
            let r = trainerOf(settings simko out 6, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance).Run(true)
            Expect.equal r.StepsDone 6L "resumed and extended"
        testCase "a setting the checkpoint predates matches on resume while it keeps its default, and is named when it does not" <| fun () ->
            let parse (s: string) = System.Text.Json.Nodes.JsonNode.Parse(s).AsObject()
            let defaults = parse """{"steps": 300, "eps": 1e-8, "lr": 0.0003}"""
            let written = parse """{"steps": 300, "lr": 0.0003}"""                  // written before eps existed
            Expect.isEmpty (Trainer.ConfigDifferences(written, parse """{"steps": 300, "eps": 1e-8, "lr": 0.0003}""", defaults)) "eps at its default: the same run"
            Expect.equal (Trainer.ConfigDifferences(written, parse """{"steps": 300, "eps": 1e-6, "lr": 0.0003}""", defaults) |> List.ofSeq)
                [ "eps: checkpoint (absent), this run 1e-6" ] "eps off its default: named"
            Expect.equal (Trainer.ConfigDifferences(written, parse """{"steps": 300, "eps": 1e-8, "lr": 0.0003}""") |> List.ofSeq)
                [ "eps: checkpoint (absent), this run 1e-8" ] "without the defaults every absent setting differs (control)"
        testCase "a damaged checkpoint is named and never loaded" <| fun () ->
            let out = tempDir "damaged"
            trainerOf(settings simko out 2, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance).Run(false) |> ignore
            let model = Path.Combine(out, "checkpoints", "step-00000002", Trainer.ModelFile)
            let bytes = File.ReadAllBytes model
            bytes.[bytes.Length / 2] <- bytes.[bytes.Length / 2] ^^^ 0xFFuy
            File.WriteAllBytes(model, bytes)
            let fresh = ToyPolicy(10L, 8L, 5L)
            let before = paramsOf fresh
            Expect.throwsC (fun () -> trainerOf(settings simko out 4, parts fresh, NullLogger.Instance).Run(true) |> ignore)
                (fun e -> Expect.stringContains e.Message model "names the damaged file")
            for a, b in Array.zip before (paramsOf fresh) do
                Expect.isTrue (a.Equals(b)) "nothing was loaded"
        testCase "resuming past a damaged newest checkpoint falls back to the newest intact one, with a warning naming it" <| fun () ->
            let whole = ToyPolicy(10L, 8L, 3L)
            trainerOf(settings simko (tempDir "fallback-whole") 6, parts whole, NullLogger.Instance).Run(false) |> ignore
            let out = tempDir "fallback"
            trainerOf(settings simko out 6, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance).Run(false, stopAfter = 4L) |> ignore
            let damaged = Path.Combine(out, "checkpoints", "step-00000004", Trainer.OptimizerFile)
            let bytes = File.ReadAllBytes damaged
            bytes.[bytes.Length - 3] <- bytes.[bytes.Length - 3] ^^^ 0x5Auy
            File.WriteAllBytes(damaged, bytes)
            let log = RecordingLogger()
            let resumed = ToyPolicy(10L, 8L, 99L)
            let r = trainerOf(settings simko out 6, parts resumed, log).Run(true)
            Expect.equal r.StepsDone 6L "finished"
            Expect.exists log.Warnings (fun w -> w.Contains damaged) (sprintf "a warning names the damaged file: %A" log.Warnings)
            Expect.exists log.Warnings (fun w -> w.Contains "step-00000002") (sprintf "a warning names the checkpoint resumed from: %A" log.Warnings)
            for a, b in Array.zip (paramsOf whole) (paramsOf resumed) do
                Expect.isTrue (a.Equals(b)) "steps 3-6 replayed from step 2 equal the uninterrupted run"
        testCase "repeated NaN updates stop the run with a message" <| fun () ->
            let policy = ToyPolicy(10L, 8L, 3L)
            policy.Poison <- true
            Expect.throwsC (fun () -> trainerOf(settings simko (tempDir "nan") 10, parts policy, NullLogger.Instance).Run(false) |> ignore)
                (fun e -> Expect.stringContains e.Message "max_bad_steps = 2" "says why")
        for method in Methods.all do
            let name = Methods.name method
            testCase (sprintf "%s: two steps change the parameters, metrics are finite, the checkpoint reloads" name) <| fun () ->
                let method = if method.Name = Methods.passK.Name then Methods.make Methods.passK { K = 2 } else method
                let out = tempDir ("method-" + name)
                let policy = ToyPolicy(10L, 8L, 3L)
                let before = paramsOf policy
                let r = trainerOf(settings method out 2, parts policy, NullLogger.Instance).Run(false)
                Expect.equal r.StepsDone 2L "steps"
                Expect.isTrue (Array.exists2 (fun (a: torch.Tensor) b -> not (a.Equals b)) before (paramsOf policy)) "parameters changed"
                for kv in r.LastMetrics do
                    Expect.isTrue (System.Double.IsFinite kv.Value) (sprintf "metric %s = %g" kv.Key kv.Value)
                let reloaded = ToyPolicy(10L, 8L, 77L)
                let r2 = trainerOf(settings method out 2, parts reloaded, NullLogger.Instance).Run(true)
                Expect.equal r2.StepsDone 2L "nothing left to do after resuming the final checkpoint"
                for a, b in Array.zip (paramsOf policy) (paramsOf reloaded) do
                    Expect.isTrue (a.Equals b) "reloaded parameters equal the trained ones"
        testCase "prompt order covers every problem once per epoch" <| fun () ->
            let t = trainerOf(settings simko (tempDir "order") 10, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance)
            let firstEpoch = [ for s in 0L .. 1L do yield! t.PromptsOf s ] @ (t.PromptsOf 2L |> Seq.take 2 |> List.ofSeq)
            Expect.sequenceEqual (List.sort firstEpoch) [ 0 .. 9 ] "a permutation of 0..9"
        testCase "the learning rate warms up linearly over warmup_steps, then stays constant" <| fun () ->
            let plain = settings simko (tempDir "warmup") 10
            let warm = { plain with Optimizer = { plain.Optimizer with WarmupSteps = 4 } }
            let t = trainerOf(warm, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance)
            let expected = [ 0.25e-2; 0.5e-2; 0.75e-2; 1e-2; 1e-2; 1e-2 ]
            SimKO.Tests.Checks.allClose "lr at steps 0..5 (lr·(s+1)/4, then lr)" 1e-15 1e-12 (Array.ofList expected) [| for s in 0L .. 5L -> t.LearningRate s |]
            let flat = trainerOf(settings simko (tempDir "nowarmup") 10, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance)
            SimKO.Tests.Checks.allClose "no warm-up: constant lr" 0.0 0.0 [| 1e-2; 1e-2 |] [| flat.LearningRate 0L; flat.LearningRate 9L |]
        // issue 24 (items 6 and 9): careless checkpoints
        testCase "a trainer.json with wrong fields but a matching checksum is an error naming the file and field" <| fun () ->
            let out = tempDir "badstate"
            trainerOf(settings simko out 2, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance).Run(false) |> ignore
            let ckpt = Path.Combine(out, "checkpoints", "step-00000002")
            let state = Path.Combine(ckpt, Trainer.StateFile)
            File.WriteAllText(state, """{"seed": 7, "skipped_updates": 0}""")
            // the manifest is rewritten to match: the file was written wrong, not damaged afterwards
            let manifest = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(ckpt, CheckpointStore.Manifest)))
            let sha = System.Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes state))
            manifest.["files"].[Trainer.StateFile].["sha256"] <- System.Text.Json.Nodes.JsonValue.Create sha
            manifest.["files"].[Trainer.StateFile].["bytes"] <- System.Text.Json.Nodes.JsonValue.Create((FileInfo state).Length)
            File.WriteAllText(Path.Combine(ckpt, CheckpointStore.Manifest), manifest.ToJsonString())
            CheckpointStore.Verify ckpt
            Expect.throwsC (fun () -> trainerOf(settings simko out 4, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance).Run(true) |> ignore) (fun e ->
                Expect.isTrue (e :? InvalidDataException) (sprintf "an InvalidDataException, got %s: %s" (e.GetType().Name) e.Message)
                Expect.stringContains e.Message state "names the file"
                Expect.stringContains e.Message "'steps_done'" "names the field")
        testCase "a checkpoint folder without its manifest.json is named in a warning, never skipped silently" <| fun () ->
            let out = tempDir "nomanifest"
            trainerOf(settings simko out 4, parts (ToyPolicy(10L, 8L, 3L)), NullLogger.Instance).Run(false) |> ignore
            let manifest = Path.Combine(out, "checkpoints", "step-00000004", CheckpointStore.Manifest)
            File.Delete manifest
            let log = RecordingLogger()
            let r = trainerOf(settings simko out 4, parts (ToyPolicy(10L, 8L, 3L)), log).Run(true)
            Expect.equal r.StepsDone 4L "resumed from step 2 and finished"
            Expect.exists log.Warnings (fun w -> w.Contains manifest) (sprintf "a warning names the missing manifest: %A" log.Warnings)
    ]

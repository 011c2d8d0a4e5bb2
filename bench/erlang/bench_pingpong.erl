%% bench_pingpong - the round trip of a small message between two processes,
%% the BEAM counterpart of bench/bench_pingpong.c; and, for bench_call, the
%% same rounds as calls.
%%
%% ping sends {self(), Round} to pong, pong sends {self(), Round} back, and
%% ping times each round trip with erlang:monotonic_time(nanosecond) into the
%% log-linear histogram of krbench_hist (the buckets of bench/hist.c): mean,
%% p50, p99 and p99.9 come from there. As in C, each timed interval includes
%% one clock read; clock_ns is the p50 of two back-to-back reads in this run.
%%
%% Placement. krill binds both processes to scheduler 0 by default, and with
%% --cross ping to scheduler 0 and pong to scheduler 1. The BEAM has no
%% documented way to do that, but erlang:spawn_opt/2 accepts an undocumented
%% {scheduler, N} option (OTP 25; N counts from 1) that binds the new process
%% to scheduler N's run queue for its whole life, so it is never migrated.
%% That is what is used here: both on scheduler 1 by default, ping on 1 and
%% pong on 2 with --cross. Both processes sample erlang:system_info(
%% scheduler_id) every 65,536 rounds and the RESULT line reports what they
%% saw (ping_on, pong_on), so a placement that did not hold shows.
%% --unbound spawns both without the option: the BEAM's own placement
%% (placement=beam).
%%
%% Modes: ping (krbench pingpong), call and gen_server (krbench call, see
%% bench_call): what ping sends and pong answers, nothing else, differs.
%% --cdf FILE writes the round trips' distribution (krbench_hist:write_cdf).
-module(bench_pingpong).
-export([run/1, run/2, sample/1, pong_hib/1]).

run(Args) ->
    run("pingpong", Args).

%% Bench is "pingpong" or "call"; call also takes --gen-server.
run(Bench, Args) ->
    Spec = [{"--rounds", rounds, 1000000}, {"--cross", cross, flag}, {"--unbound", unbound, flag},
            {"--cdf", cdf, string}]
        ++ [{"--gen-server", gen_server, flag} || Bench =:= "call"]
        ++ [{"--hibernate", hibernate, flag} || Bench =:= "pingpong"],
    case krbench:opts(Bench, Args, Spec) of
        {error, Rc} -> Rc;
        {ok, #{cross := true, unbound := true}} ->
            krbench:note("krbench ~s: --cross and --unbound exclude each other~n", [Bench]),
            2;
        {ok, #{cross := true, schedulers := S}} when S < 2 ->
            krbench:note("krbench ~s: --cross needs at least 2 schedulers (have ~b)~n", [Bench, S]),
            2;
        {ok, #{rounds := Rounds, cross := Cross, unbound := Unbound, schedulers := S,
               cdf := Cdf} = O} ->
            Placement = if Cross -> cross; Unbound -> beam; true -> same end,
            Mode = case O of
                       #{gen_server := true} -> gen_server;
                       _ when Bench =:= "call" -> call;
                       #{hibernate := true} -> hibernate;
                       _ -> ping
                   end,
            krbench:run_root(Bench, fun() ->
                                            root(Bench, Mode, Rounds, min(Rounds div 10, 10000),
                                                 Placement, S, Cdf)
                                    end)
    end.

root(Bench, Mode, Rounds, Warmup, Placement, Scheds, Cdf) ->
    ClockNs = clock_cost(),
    {PingOpt, PongOpt} = case Placement of
                             same -> {[{scheduler, 1}], [{scheduler, 1}]};
                             cross -> {[{scheduler, 1}], [{scheduler, 2}]};
                             beam -> {[], []}
                         end,
    Root = self(),
    Pong = start_pong(Mode, PongOpt),
    Ping = spawn_opt(fun() -> Root ! {self(), ping(Mode, Pong, Rounds, Warmup)} end, PingOpt),
    krbench:note("~s: ~b rounds (+~b warm-up), ~s~n",
                 [Bench, Rounds, Warmup, case Placement of
                                      same -> "both bound to scheduler 1";
                                      cross -> "ping bound to scheduler 1, pong to scheduler 2";
                                      beam -> "placed by the BEAM"
                                  end]),
    case wait_ping(Bench, Ping) of
        {error, Why} ->
            krbench:note("krbench ~s: ~s~n", [Bench, Why]),
            1;
        {ok, H, WallNs, PingOn} ->
            Pong ! {stop, self()},
            PongOn = receive {Pong, On} -> On end,
            case write_cdf(Cdf, H) of
                ok ->
                    report(Bench, Mode, H, WallNs, ClockNs, Rounds, Placement, Scheds,
                           PingOn, PongOn);
                {error, Why} ->
                    krbench:note("krbench ~s: cannot write ~s: ~p~n", [Bench, Cdf, Why]),
                    1
            end
    end.

write_cdf(undefined, _) -> ok;
write_cdf(File, H) -> krbench_hist:write_cdf(H, File, "beam round trips").

wait_ping(Bench, Ping) ->
    receive
        {Ping, Result} -> Result
    after 5000 ->
            krbench:note("~s: still waiting for ping to finish~n", [Bench]),
            wait_ping(Bench, Ping)
    end.

start_pong(ping, Opt) -> spawn_opt(fun() -> pong([]) end, Opt);
start_pong(hibernate, Opt) -> spawn_opt(fun() -> erlang:hibernate(?MODULE, pong_hib, [[]]) end, Opt);
start_pong(call, Opt) -> spawn_opt(fun() -> bench_call:server([]) end, Opt);
start_pong(gen_server, Opt) ->
    {ok, Pid} = gen_server:start(bench_call, [], [{spawn_opt, Opt}]),
    Pid.

%% One round: ping's side.
exchange(Ping, Pong, I) when Ping =:= ping; Ping =:= hibernate ->
    Pong ! {self(), I},
    receive Back -> Back end;
exchange(call, Pong, I) ->
    bench_call:call(Pong, I);
exchange(gen_server, Pong, I) ->
    gen_server:call(Pong, I, infinity).

%% Is this round's answer the right one? (Matching builds no term.)
answered(Ping, Pong, I, {Pong, I}) when Ping =:= ping; Ping =:= hibernate -> true;
answered(Ping, _, _, _) when Ping =:= ping; Ping =:= hibernate -> false;
answered(_, _, I, I) -> true;
answered(_, _, _, _) -> false.

%% --hibernate: answer one message, then hibernate (erlang:hibernate/3).
pong_hib(On) ->
    receive
        {From, I} when is_pid(From) ->
            From ! {self(), I},
            erlang:hibernate(?MODULE, pong_hib,
                             [if I band 16#ffff =:= 0 -> sample(On); true -> On end]);
        {stop, From} ->
            From ! {self(), sample(On)}
    end.

pong(On) ->
    receive
        {From, I} when is_pid(From) ->
            From ! {self(), I},
            pong(if I band 16#ffff =:= 0 -> sample(On); true -> On end);
        {stop, From} ->
            From ! {self(), sample(On)}
    end.

ping(Mode, Pong, Rounds, Warmup) ->
    T = krbench:now_ns(),
    ping(Mode, Pong, 0, Rounds + Warmup, Warmup, krbench_hist:new(), 0, T, []).

ping(_, _, I, Total, _, H, Wall0, _, On) when I =:= Total ->
    {ok, H, krbench:now_ns() - Wall0, sample(On)};
ping(Mode, Pong, I, Total, Warmup, H, Wall0, LastNote, On) ->
    T0 = erlang:monotonic_time(nanosecond),
    Back = exchange(Mode, Pong, I),
    T1 = erlang:monotonic_time(nanosecond),
    case answered(Mode, Pong, I, Back) of
        true ->
            H1 = if I >= Warmup -> krbench_hist:record(H, T1 - T0); true -> H end,
            W1 = if I =:= Warmup -> T0; true -> Wall0 end,
            if
                I band 16#ffff =:= 0 ->
                    Note = if
                               T1 - LastNote > 1000000000 ->
                                   krbench:note("~s: ~b/~b rounds~n", [Mode, I, Total]),
                                   T1;
                               true -> LastNote
                           end,
                    ping(Mode, Pong, I + 1, Total, Warmup, H1, W1, Note, sample(On));
                true ->
                    ping(Mode, Pong, I + 1, Total, Warmup, H1, W1, LastNote, On)
            end;
        false ->
            {error, io_lib:format("ping: round ~b got back a wrong message: ~p", [I, Back])}
    end.

%% The schedulers this process has been seen on.
sample(On) ->
    lists:usort([erlang:system_info(scheduler_id) | On]).

on(On) ->
    lists:join("+", [integer_to_list(S) || S <- On]).

%% The p50 of what an empty timed interval measures.
clock_cost() ->
    clock_cost(100000, krbench_hist:new()).

clock_cost(0, H) ->
    krbench_hist:percentile(H, 50);
clock_cost(N, H) ->
    T0 = erlang:monotonic_time(nanosecond),
    T1 = erlang:monotonic_time(nanosecond),
    clock_cost(N - 1, krbench_hist:record(H, T1 - T0)).

report(Bench, Mode, H, WallNs, ClockNs, Rounds, Placement, Scheds, PingOn, PongOn) ->
    case krbench_hist:count(H) of
        Rounds ->
            P = fun(Pc) -> krbench_hist:percentile(H, Pc) end,
            Mean = krbench_hist:mean(H),
            %% call's ns_per_call (issue 4's name for it) is the mean round trip.
            Server = case Mode of
                         ping -> [];
                         hibernate -> [{pong, hibernating}];
                         call -> [{server, 'receive'}, {ns_per_call, {float, 1, Mean}}];
                         gen_server -> [{server, gen_server}, {ns_per_call, {float, 1, Mean}}]
                     end,
            krbench:result(Bench,
                           [{schedulers, Scheds}, {placement, Placement},
                            {rtt_mean_ns, {float, 1, Mean}}, {p50_ns, P(50)}, {p99_ns, P(99)},
                            {p999_ns, P(99.9)}, {max_ns, P(100)},
                            {wall_ns_per_rtt, {float, 1, WallNs / Rounds}}, {clock_ns, ClockNs},
                            {rounds, Rounds}, {ping_on, on(PingOn)}, {pong_on, on(PongOn)}
                           | Server]),
            io:format("~s (~s scheduler): round trip mean ~s ns, p50 ~b ns, p99 ~b ns, "
                      "p99.9 ~b ns, max ~b ns over ~b rounds (a clock read: ~b ns; "
                      "ping ran on scheduler ~s, pong on ~s)~n",
                      [Bench, Placement, krbench:decimals(1, Mean), P(50), P(99), P(99.9), P(100),
                       Rounds, ClockNs, on(PingOn), on(PongOn)]),
            0;
        N ->
            krbench:note("krbench ~s: timed ~b rounds, wanted ~b~n", [Bench, N, Rounds]),
            1
    end.

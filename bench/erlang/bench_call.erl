%% bench_call - request and reply on the BEAM, the counterpart of krbench
%% call (bench/bench_pingpong.c): the rounds of bench_pingpong, made as
%% calls.
%%
%% By default the call is written out by hand, doing what kr_call and
%% kr_reply do, step for step: the caller monitors the server, sends the
%% request with the monitor's reference, waits for the answer carrying that
%% reference or the server's DOWN (the compiler turns that receive into one
%% that skips the messages queued before the monitor was made, as kr_call
%% skips them), then removes the monitor and flushes its DOWN; the server
%% answers {Ref, Reply}. That is the same work on both sides, and so the
%% fair comparison. gen_server:call does that too, plus the behaviour's
%% layers on both sides (an alias, a catch, the server loop's dispatch to
%% handle_call): --gen-server measures a call to a gen_server instead, what
%% an Erlang program usually pays. The RESULT line says which (server=).
-module(bench_call).
-behaviour(gen_server).
-export([run/1, call/2, server/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

run(Args) ->
    bench_pingpong:run("call", Args).

%% kr_call, in Erlang.
call(Server, Req) ->
    Ref = erlang:monitor(process, Server),
    Server ! {call, self(), Ref, Req},
    receive
        {Ref, Reply} ->
            erlang:demonitor(Ref, [flush]),
            Reply;
        {'DOWN', Ref, process, _, Reason} ->
            exit({noproc, Reason})
    end.

%% The server of the hand-written call; On: the schedulers it was seen on.
server(On) ->
    receive
        {call, From, Ref, I} ->
            From ! {Ref, I},
            server(sample(I, On));
        {stop, From} ->
            From ! {self(), bench_pingpong:sample(On)}
    end.

sample(I, On) when I band 16#ffff =:= 0 -> bench_pingpong:sample(On);
sample(_, On) -> On.

%% The same server as a gen_server; its state is On.
init([]) ->
    {ok, []}.

handle_call(I, _From, On) ->
    {reply, I, sample(I, On)}.

handle_cast(_, On) ->
    {noreply, On}.

handle_info({stop, From}, On) ->
    From ! {self(), bench_pingpong:sample(On)},
    {stop, normal, On}.

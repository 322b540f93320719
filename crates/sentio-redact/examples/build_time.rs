fn main() {
    let t = std::time::Instant::now();
    let n = 20;
    for _ in 0..n {
        let e = sentio_redact::Engine::builtin().unwrap();
        std::hint::black_box(e);
    }
    println!("engine build: {:.2} ms", t.elapsed().as_secs_f64() * 1000.0 / n as f64);
    let e = sentio_redact::Engine::builtin().unwrap();
    let text = "Hi, my name is Maria Gonzalez, my card 4111 1111 1111 1111 was charged twice and nobody answers at +44 20 7946 0958. This is the worst service I have ever had, please email me at maria.g@example.com ".repeat(1);
    let t = std::time::Instant::now();
    let n = 2000;
    for _ in 0..n { std::hint::black_box(e.analyze(&text, &Default::default())); }
    let s = t.elapsed().as_secs_f64();
    println!("first analyze-run: {:.1} us per text, {:.1} MB/s", s*1e6/n as f64, (text.len()*n) as f64/s/1e6);
    let clean = "The app keeps crashing whenever I open the settings page, and I have been waiting for a fix for two weeks now. Really disappointed with the update. ";
    let t = std::time::Instant::now();
    for _ in 0..n { std::hint::black_box(e.analyze(clean, &Default::default())); }
    let s = t.elapsed().as_secs_f64();
    println!("clean: {:.1} us per text, {:.1} MB/s", s*1e6/n as f64, (clean.len()*n) as f64/s/1e6);
}

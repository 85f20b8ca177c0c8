/* Minimal C receivers and sender for load_tests/bench_receive.py (the baseline the Python path is compared to).
 *
 *   receive_baseline drain PORT0 STREAMS SECONDS TICK_MS   bind STREAMS sockets on even ports from PORT0, and every
 *       TICK_MS drain each with recvmmsg(2) into preallocated buffers (the design of media/udp_batch.py);
 *       prints "packets cpu_seconds".
 *   receive_baseline send PORT0 STREAMS SECONDS            send 20 ms PCMU RTP packets (172 octets: RFC 3550
 *       header, 160 octets of a µ-law tone of its own per stream, with a little noise), 50 per second per
 *       stream, to 127.0.0.1; prints "packets".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXDG 2048

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void sleep_until(double t) {
    double d = t - now();
    if (d > 0) {
        struct timespec ts = {(time_t)d, (long)((d - (time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int drain(int port0, int streams, double seconds, int tick_ms) {
    int *fds = calloc(streams, sizeof(int));
    static char data[BATCH][MAXDG];
    static char control[BATCH][64];
    static struct sockaddr_in names[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    int one = 1, rcvbuf = 256 * 1024;
    for (int i = 0; i < streams; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port0 + 2 * i)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        setsockopt(fds[i], SOL_SOCKET, SO_TIMESTAMP, &one, sizeof one);
        if (bind(fds[i], (struct sockaddr *)&a, sizeof a) != 0) { perror("bind"); return 1; }
    }
    printf("ready\n");
    fflush(stdout);
    long packets = 0;
    double start = now(), cpu0 = cpu(), next = start;
    while (now() - start < seconds) {
        next += tick_ms / 1000.0;
        sleep_until(next);
        for (int i = 0; i < streams; i++) {
            for (;;) {
                for (int k = 0; k < BATCH; k++) {
                    iov[k].iov_base = data[k];
                    iov[k].iov_len = MAXDG;
                    memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
                    msgs[k].msg_hdr.msg_name = &names[k];
                    msgs[k].msg_hdr.msg_namelen = sizeof names[k];
                    msgs[k].msg_hdr.msg_iov = &iov[k];
                    msgs[k].msg_hdr.msg_iovlen = 1;
                    msgs[k].msg_hdr.msg_control = control[k];
                    msgs[k].msg_hdr.msg_controllen = sizeof control[k];
                }
                int n = recvmmsg(fds[i], msgs, BATCH, MSG_DONTWAIT, NULL);
                if (n <= 0) break;
                packets += n;
                if (n < BATCH) break;
            }
        }
    }
    printf("%ld %.6f\n", packets, cpu() - cpu0);
    return 0;
}

/* G.711 µ-law encoding of one 16-bit sample (the segment search of the reference encoder). */
static unsigned char ulaw(int sample) {
    int sign = sample < 0 ? 0x7F : 0xFF, magnitude = (sample < 0 ? -sample : sample) >> 2;
    if (magnitude > 8159) magnitude = 8159;
    magnitude += 0x21;
    int segment = 0;
    for (int v = magnitude >> 6; v; v >>= 1) segment++;
    return (unsigned char)(((segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)) ^ sign);
}

static int send_streams(int port0, int streams, double seconds) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int sndbuf = 4 * 1024 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    unsigned char packet[172] = {0x80, 0x00};
    /* One second of audio per stream: a tone of its own (300 Hz + 7 Hz per stream) and a little noise. */
    unsigned char *audio = malloc((size_t)streams * 8000);
    unsigned int noise = 12345;
    for (int i = 0; i < streams; i++)
        for (int k = 0; k < 8000; k++) {
            noise = noise * 1103515245u + 12345u;
            double tone = 8000.0 * sin(2 * M_PI * (300.0 + 7.0 * (i % 500)) * k / 8000.0);
            audio[(size_t)i * 8000 + k] = ulaw((int)tone + (int)(noise >> 16) % 61 - 30);
        }
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long packets = 0;
    double start = now(), next = start;
    for (int step = 0; now() - start < seconds; step++) {
        next += 0.020;
        sleep_until(next);
        unsigned int ts = (unsigned int)step * 160;
        for (int i = 0; i < streams; i++) {
            unsigned int ssrc = 0x10000 + (unsigned int)i;
            packet[2] = step >> 8; packet[3] = step;
            packet[4] = ts >> 24; packet[5] = ts >> 16; packet[6] = ts >> 8; packet[7] = ts;
            packet[8] = ssrc >> 24; packet[9] = ssrc >> 16; packet[10] = ssrc >> 8; packet[11] = ssrc;
            memcpy(packet + 12, audio + (size_t)i * 8000 + (size_t)(step % 50) * 160, 160);
            a.sin_port = htons(port0 + 2 * i);
            if (sendto(fd, packet, sizeof packet, 0, (struct sockaddr *)&a, sizeof a) > 0) packets++;
        }
    }
    free(audio);
    printf("%ld\n", packets);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "send") == 0)
        return send_streams(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
    if (argc >= 6 && strcmp(argv[1], "drain") == 0)
        return drain(atoi(argv[2]), atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: receive_baseline send PORT0 STREAMS SECONDS | drain PORT0 STREAMS SECONDS TICK_MS\n");
    return 2;
}

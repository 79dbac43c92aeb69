package images

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"

	"github.com/disintegration/imaging"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/shopd/shopd"
	"github.com/shopd/shopd/jobs"
)

// ThumbnailSize is the most pixels a thumbnail has on its longer side.
const ThumbnailSize = 400

// KindThumbnail is the thumbnail job's kind; it is stored in river_job rows
// and labels the job metrics, so it never changes.
const KindThumbnail = "product_image_thumbnail"

// JobKinds lists this package's job kinds.
func JobKinds() []string { return []string{KindThumbnail} }

// JobInserter enqueues a job in the caller's transaction; jobs.Client is one.
type JobInserter interface {
	InsertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// SetJobs gives the service its job inserter; until then uploads schedule
// no thumbnails (the job client needs the worker first).
func (s *Service) SetJobs(j JobInserter) { s.jobs = j }

// AddWorkers registers the thumbnail worker on w.
func (s *Service) AddWorkers(w *river.Workers) error {
	return river.AddWorkerSafely(w, &thumbnailWorker{s: s})
}

// ThumbnailArgs makes the thumbnail of ImageID.
type ThumbnailArgs struct {
	ImageID string `json:"image_id"`
}

// Kind is the job's kind.
func (ThumbnailArgs) Kind() string { return KindThumbnail }

// InsertOpts makes the job unique per image while it waits.
func (ThumbnailArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: jobs.UniqueWhileQueued}
}

// scheduleThumbnail inserts the thumbnail job of imageID in the upload's
// transaction.
func (s *Service) scheduleThumbnail(ctx context.Context, imageID string) func(tx *sql.Tx) error {
	return func(tx *sql.Tx) error {
		if s.jobs == nil {
			return nil
		}
		if _, err := s.jobs.InsertTx(ctx, tx, ThumbnailArgs{ImageID: imageID}, nil); err != nil {
			return fmt.Errorf("schedule thumbnail: %w", err)
		}
		return nil
	}
}

type thumbnailWorker struct {
	river.WorkerDefaults[ThumbnailArgs]
	s *Service
}

func (w *thumbnailWorker) Work(ctx context.Context, j *river.Job[ThumbnailArgs]) error {
	return w.s.MakeThumbnail(ctx, j.Args.ImageID)
}

// MakeThumbnail makes and records the thumbnail of an image: at most
// ThumbnailSize pixels on its longer side, never enlarged; PNG for a PNG
// (it may be transparent), JPEG otherwise. An image deleted before or while
// it runs is no error: a thumbnail made for it is removed again.
func (s *Service) MakeThumbnail(ctx context.Context, imageID string) error {
	img, err := s.store.ProductImageByID(ctx, imageID)
	if shopd.ErrorCode(err) == shopd.ENotFound {
		return nil
	}
	if err != nil {
		return err
	}
	if img.ThumbnailKey != nil {
		return nil
	}
	r, err := s.bucket.NewReader(ctx, img.BlobKey, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("thumbnail %s: open: %w", imageID, err)
	}
	data, err := ReadFile(r)
	r.Close()
	if err != nil {
		return fmt.Errorf("thumbnail %s: read: %w", imageID, err)
	}
	c, err := check(data)
	if err != nil {
		// Checked at upload; retrying will not change the bytes.
		return river.JobCancel(fmt.Errorf("thumbnail %s: %w", imageID, err))
	}
	thumb, contentType, err := encodeThumbnail(c.img, c.contentType)
	if err != nil {
		return fmt.Errorf("thumbnail %s: %w", imageID, err)
	}
	key := img.BlobKey + ".thumb"
	if err := s.bucket.WriteAll(ctx, key, thumb, &blob.WriterOptions{ContentType: contentType}); err != nil {
		return fmt.Errorf("thumbnail %s: store: %w", imageID, err)
	}
	ok, err := s.store.SetImageThumbnail(ctx, imageID, key)
	if err != nil {
		return err
	}
	if !ok {
		// Deleted while we worked: its delete did not know of this blob.
		s.remove(context.WithoutCancel(ctx), key)
	}
	return nil
}

// encodeThumbnail scales img to fit ThumbnailSize and encodes it.
func encodeThumbnail(img image.Image, contentType string) ([]byte, string, error) {
	small := imaging.Fit(img, ThumbnailSize, ThumbnailSize, imaging.Lanczos)
	var buf bytes.Buffer
	if contentType == PNG {
		if err := png.Encode(&buf, small); err != nil {
			return nil, "", fmt.Errorf("encode PNG: %w", err)
		}
		return buf.Bytes(), PNG, nil
	}
	if err := jpeg.Encode(&buf, small, &jpeg.Options{Quality: 85}); err != nil {
		return nil, "", fmt.Errorf("encode JPEG: %w", err)
	}
	return buf.Bytes(), JPEG, nil
}
